//! `crtest plan`: the cells a matrix expands to, without running any.

use super::select::load_plan;
use crate::cli::{PlanFormat, Select};
use crate::plan::{Cell, Plan};
use crate::prepare::Project;
use anyhow::Result;
use std::collections::BTreeSet;
use std::io::Write;

pub fn plan(
    project: &Project,
    select: &Select,
    format: PlanFormat,
    seed: Option<u64>,
    out: &mut dyn Write,
) -> Result<i32> {
    let (matrix, plan) = load_plan(project, select, None)?;
    let plan = match seed {
        Some(seed) => plan.seeded(seed, &matrix.library),
        None => plan,
    };
    match format {
        PlanFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&plan)?)?,
        PlanFormat::Text => {
            for c in &plan.cells {
                writeln!(out, "{}", cell_line(c))?;
            }
            writeln!(out, "{}", totals(&plan))?;
        }
    }
    Ok(0)
}

/// A cell's id, its route (engines, chain of converters, PID slot, dump
/// point under the seed), its role and why it is skipped.
fn cell_line(c: &Cell) -> String {
    let chain: Vec<String> = c.chain().iter().map(|s| format!("{} -> {} ({})", s.from, s.to, s.using.name())).collect();
    let via = if chain.is_empty() { String::new() } else { format!("  via {}", chain.join(", ")) };
    let route = c.route.as_ref().map_or(String::new(), |r| {
        let after = r.dump_after.map_or(String::new(), |s| format!(", dump after step {s}"));
        format!("  [{} -> {}, pid slot {}{after}]", r.dump_engine, r.restore_engine, r.pid_slot)
    });
    let role = match (&c.control, c.control_only) {
        (_, true) => "  (control only)".to_string(),
        (Some(ctl), _) => format!("  control {ctl}"),
        (None, _) => String::new(),
    };
    let skip = c.skip.as_ref().map(|s| format!("  SKIP: {s}")).unwrap_or_default();
    format!("{}{route}{via}{role}{skip}", c.id)
}

/// What the run of `plan` will do: cells, guests, reference runs, dumps, restores.
fn totals(plan: &Plan) -> String {
    let runnable = plan.runnable().count();
    let sources: BTreeSet<String> = plan.dumps().into_iter().map(|(_, k)| k).collect();
    let targets: BTreeSet<String> = plan.runnable().map(|c| c.dst_kind()).collect();
    format!(
        "{} cells ({runnable} runnable, {} added as controls): {} source guests (references and dumps), \
{} target guests (restores; never the dumping guest), {} reference runs, {} dumps, {runnable} restores",
        plan.cells.len(),
        plan.cells.iter().filter(|c| c.control_only).count(),
        sources.len(),
        targets.len(),
        plan.dumps().len(),
        plan.dumps().len(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::tests::project;

    /// The plan of `matrix` (a matrix.yaml text) over the fixture project, as printed.
    fn printed(matrix: &str, select: Select, format: PlanFormat) -> anyhow::Result<String> {
        let (dir, project) = project();
        std::fs::write(dir.path().join("matrix.yaml"), matrix)?;
        let select = Select { matrix: dir.path().join("matrix.yaml"), ..select };
        let mut out = Vec::new();
        assert_eq!(plan(&project, &select, format, Some(1), &mut out)?, 0);
        Ok(String::from_utf8(out)?)
    }

    const MATRIX: &str = "kernels: [\"5.10\", \"6.1\"]\nworkloads: [counter, pipe]\npairs: all\n";

    #[test]
    fn text_lists_cells_then_what_the_run_does() {
        let text = printed(MATRIX, Select::default(), PlanFormat::Text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // The route resolved by the plan: engines, PID slot, and the dump point of seed 1.
        assert!(
            lines.contains(
                &"counter/5.10->6.1  [host -> host, pid slot 0, dump after step 1]  control counter/5.10->5.10"
            ),
            "{text}"
        );
        assert!(lines
            .contains(&"counter/6.1->5.10  [host -> host, pid slot 1, dump after step 2]  control counter/6.1->6.1"));
        assert!(lines.iter().any(|l| l.starts_with("pipe/5.10->5.10") && l.contains("SKIP: ")), "{text}");
        assert_eq!(
            lines.last().unwrap(),
            &"8 cells (5 runnable, 0 added as controls): 2 source guests (references and dumps), 2 target guests \
(restores; never the dumping guest), 3 reference runs, 3 dumps, 5 restores"
        );
        assert_eq!(lines.len(), 9);
    }

    #[test]
    fn json_is_the_plan_and_filters_apply() {
        let select = Select { workloads: vec!["counter".into()], ..Select::default() };
        let text = printed(MATRIX, select, PlanFormat::Json).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ids: Vec<&str> = doc["cells"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 4, "{text}");
        assert!(ids.iter().all(|id| id.starts_with("counter/")), "{ids:?}");
    }

    #[test]
    fn a_kernel_outside_the_matrix_is_refused() {
        let select = Select { kernels: vec!["6.12".into()], ..Select::default() };
        let e = printed(MATRIX, select, PlanFormat::Text).unwrap_err().to_string();
        assert!(e.starts_with("--kernel 6.12: not a kernel of ") && e.ends_with("(it has 5.10, 6.1)"), "{e}");
    }
}
