//! Reading back what criterion measured (its `estimates.json`), so a bench can
//! print ratios and per-op figures from the same run as markdown tables.
//!
//! ```
//! use shm_benches::report::{Table, ratio};
//! let mut table = Table::new(["a", "b"]);
//! table.row(["1", &ratio(Some(3.0), Some(2.0))]);
//! assert_eq!(table.to_string(), "| a | b |\n|---|---|\n| 1 | 1.500 |\n");
//! ```

use std::{fmt, fs, path::PathBuf};

/// Where criterion writes its results, found as criterion finds it:
/// `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the workspace's
/// `target/criterion` (benches run from the package folder).
pub fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

/// Criterion's mean time per iteration of `group/bench` in nanoseconds, from
/// the run that just finished; `None` if it was not run (filtered out).
pub fn mean_ns(group: &str, bench: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let text = fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// `a / b` with three decimals, or `n/a`.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
        _ => "n/a".into(),
    }
}

/// Nanoseconds, with a unit that keeps three significant figures.
pub fn duration(ns: Option<f64>) -> String {
    match ns {
        None => "n/a".into(),
        Some(ns) if ns.abs() >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns.abs() >= 1e3 => format!("{:.2} µs", ns / 1e3),
        Some(ns) => format!("{ns:.1} ns"),
    }
}

/// A markdown table.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(header: I) -> Self {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    pub fn row<I: IntoIterator<Item = S>, S: Into<String>>(&mut self, cells: I) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "| {} |", self.header.join(" | "))?;
        writeln!(f, "|{}", "---|".repeat(self.header.len()))?;
        for row in &self.rows {
            writeln!(f, "| {} |", row.join(" | "))?;
        }
        Ok(())
    }
}

/// Prints `title` and `table` to stdout and appends them to
/// `<criterion home>/shm-report.md`, so that a run's tables can be collected.
pub fn publish(title: &str, table: &Table) {
    let text = format!("\n### {title}\n\n{table}");
    println!("{text}");
    let path = criterion_home().join("shm-report.md");
    let _ = fs::create_dir_all(criterion_home());
    if let Ok(mut file) = fs::OpenOptions::new().create(true).append(true).open(path) {
        use std::io::Write;
        let _ = file.write_all(text.as_bytes());
    }
}
