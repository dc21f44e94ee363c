//! The README's option table and the plugin's option table (`options::OPTIONS`) say the same:
//! one row per documented option, in the table's order, whose first cell is the name and its
//! aliases (`` `apikey` (alias `api_key`) ``), whose default cell is the table's default word
//! for word, and whose effect cell contains the table's accepted text (backticks aside). Test
//! options appear in neither direction.

use fluent_bit_datadog::internals::options::{OPTIONS, OptionSpec};

/// A README row: first cell, default cell, effect cell.
type Row = (String, String, String);

/// The rows of the README table headed
/// `| option | default | effect |`.
fn readme_rows(readme: &str) -> Vec<Row> {
    let mut lines = readme
        .lines()
        .skip_while(|l| l.trim() != "| option | default | effect |")
        .skip(2);
    let mut rows = Vec::new();
    for line in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        let cells: Vec<&str> = inner.splitn(3, " | ").map(str::trim).collect();
        assert_eq!(
            cells.len(),
            3,
            "README option row without three cells: {line}"
        );
        rows.push((cells[0].into(), cells[1].into(), cells[2].into()));
    }
    rows
}

/// The first cell a README row for `spec` must have.
fn name_cell(spec: &OptionSpec) -> String {
    let quoted: Vec<String> = spec.aliases.iter().map(|a| format!("`{a}`")).collect();
    match quoted.len() {
        0 => format!("`{}`", spec.name),
        1 => format!("`{}` (alias {})", spec.name, quoted[0]),
        _ => format!("`{}` (aliases {})", spec.name, quoted.join(", ")),
    }
}

/// Differences between the README table `rows` and the option table, one line each.
fn differences(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    let documented: Vec<&OptionSpec> = OPTIONS.iter().filter(|o| !o.test_only).collect();
    for (name, _, _) in rows {
        if !documented.iter().any(|o| name_cell(o) == *name) {
            out.push(format!(
                "README row {name} names no documented option (or not with its aliases)"
            ));
        }
    }
    for (i, spec) in documented.iter().enumerate() {
        let Some(pos) = rows.iter().position(|r| r.0 == name_cell(spec)) else {
            out.push(format!(
                "option {} has no README row `{}`",
                spec.name,
                name_cell(spec)
            ));
            continue;
        };
        let (_, default, effect) = &rows[pos];
        if pos != i {
            out.push(format!(
                "option {} is row {pos} of the README, {i} of OPTIONS",
                spec.name
            ));
        }
        if default != spec.default {
            out.push(format!(
                "option {}: README default {default:?}, OPTIONS {:?}",
                spec.name, spec.default
            ));
        }
        if !effect.replace('`', "").contains(spec.accepted) {
            out.push(format!(
                "option {}: README effect lacks the accepted text {:?}",
                spec.name, spec.accepted
            ));
        }
    }
    out
}

#[test]
fn readme_option_table_matches_the_options_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let rows = readme_rows(&readme);
    assert!(
        rows.len() >= 20,
        "README option table not found ({} rows)",
        rows.len()
    );
    let diff = differences(&rows);
    assert!(
        diff.is_empty(),
        "README and OPTIONS differ:\n{}",
        diff.join("\n")
    );
}

#[test]
fn each_kind_of_difference_is_found() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let rows = readme_rows(&readme);
    let edit = |f: &dyn Fn(&mut Vec<Row>)| {
        let mut r = rows.clone();
        f(&mut r);
        differences(&r)
    };
    // A missing row, an extra row, a changed default, a changed accepted text, an alias left
    // out, a test-only option documented, two rows swapped.
    assert!(
        !edit(&|r| {
            r.remove(3);
        })
        .is_empty()
    );
    assert!(!edit(&|r| r.push(("`dd_typo`".into(), "none".into(), String::new()))).is_empty());
    assert!(!edit(&|r| r[0].1 = "none".into()).is_empty());
    assert!(!edit(&|r| r[14].2 = "`gzip` or `none`".into()).is_empty());
    assert!(!edit(&|r| r[0].0 = "`apikey`".into()).is_empty());
    assert!(!edit(&|r| r.push(("`site_probe`".into(), "none".into(), String::new()))).is_empty());
    assert!(!edit(&|r| r.swap(1, 2)).is_empty());
}
