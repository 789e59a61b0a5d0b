//! A small glob for cell ids: `*` matches any run of characters (`/` and
//! `->` included, so `counter/*` is every cell of a workload), `?` any one
//! character, everything else itself. No classes or escapes: cell ids use
//! neither `[` nor `\`, and a pattern that means what it says is easier to
//! put in a CI file than one that needs quoting rules.

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`): linear in
    // practice, never exponential whatever the pattern.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and retry.
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("counter/6.1->6.12", "counter/6.1->6.12"));
        assert!(!matches("counter/6.1->6.1", "counter/6.1->6.12"), "a pattern matches the whole id");
        assert!(matches("counter/*", "counter/6.1->6.12"));
        assert!(matches("*/6.1->*", "pipe/6.1->7.3"));
        assert!(!matches("*/6.1->*", "pipe/6.12->7.3"));
        assert!(matches("*->6.1?", "tcp/5.10->6.12"));
        assert!(!matches("*->6.1?", "tcp/5.10->6.1"));
        assert!(matches("*", ""));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(!matches("?", ""));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("**", "anything"));
        assert!(matches("*@criu-4.2*", "counter/6.12@criu-4.2->6.12@criu-4.1"));
    }

    #[test]
    fn many_stars_stay_fast() {
        let text = "a".repeat(2000);
        let pattern = format!("{}b", "*a".repeat(50));
        let started = std::time::Instant::now();
        assert!(!matches(&pattern, &text));
        assert!(started.elapsed().as_secs() < 2, "backtracking must stay bounded");
    }
}
