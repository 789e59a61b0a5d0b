# Asks the engine which of $FEATURES this kernel supports, one `NAME RC`
# line each.
eval "set -- $FEATURES"
for f; do criu check --feature "$f" >/dev/null 2>&1; echo "$f $?"; done
