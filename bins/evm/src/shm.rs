//! `evm shm`: inspect and manage a mapped shared-memory namespace from the shell
//! (list, show, remove, dump, load and repair regions). Every command reads
//! committed state under the regions' locks; none changes a region a live
//! process is using unless told to (`rm --force`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use shm_mapped::{
    dump_namespace, Access, ListedRegion, MappedError, Namespace, RegionStatus, Snapshot,
};
use shm_primitives::{Compression, Permissions};

use crate::{output, ExitCode};

/// The largest snapshot `shm load` reads (it holds the whole file in memory).
const MAX_SNAPSHOT_BYTES: u64 = 16 << 30;

/// Arguments of `evm shm`.
#[derive(Args, Debug)]
pub(crate) struct ShmArgs {
    #[command(subcommand)]
    command: ShmCommand,
    /// Root directory of namespaces (default: /dev/shm).
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
    /// Group access: a namespace made here is for its directory's group
    /// (2770, files 0660), and a group namespace of another owner is
    /// accepted when this user is in its group. Default: private namespaces
    /// only (0700, files 0600; another user's namespace is refused).
    #[arg(long, global = true)]
    group: bool,
}

#[derive(Subcommand, Debug)]
enum ShmCommand {
    /// List the regions of a namespace: handle, name, size, owner, persistence,
    /// commit, last access, and who holds or uses it (a dead holder is named as such).
    Ls {
        /// The namespace.
        namespace: String,
        /// One JSON object per region.
        #[arg(long)]
        json: bool,
    },
    /// Print a range of a region's last committed bytes in hex (16 per line,
    /// with offsets). A region with a transaction open in a live process is
    /// refused (its bytes are not committed); one left open by a dead process
    /// is rolled back first.
    Show {
        /// The namespace.
        namespace: String,
        /// The region: its name, its handle (decimal or 0x hex) or #INDEX.
        region: String,
        /// First byte to show.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Bytes to show (default: up to the region's size, at most 4096).
        #[arg(long)]
        len: Option<u64>,
        /// How long to wait for a transaction in another process to end.
        #[arg(long, value_name = "MS", default_value_t = 200)]
        wait_ms: u64,
    },
    /// Remove a region (its file and undo log) from a namespace. Refused while
    /// a live process has it attached or locked, unless --force; processes
    /// that still map it find it freed at their next access.
    Rm {
        /// The namespace.
        namespace: String,
        /// The region: its name, its handle (decimal or 0x hex) or #INDEX.
        region: String,
        /// Remove it even though a live process uses it.
        #[arg(long)]
        force: bool,
    },
    /// Snapshot every region of a namespace into one file.
    Dump {
        /// The namespace.
        namespace: String,
        /// The snapshot file to write.
        out: PathBuf,
        /// Compression for every region: none, lz4 or zstd (default: each region's own option).
        #[arg(long)]
        compression: Option<String>,
    },
    /// Load a snapshot into a namespace: all its regions, or none.
    Load {
        /// The snapshot file.
        input: PathBuf,
        /// The namespace.
        namespace: String,
    },
    /// Rebuild a lost or damaged table of issued handle generations from the
    /// region files. Handles of regions freed before the table was lost may be
    /// issued again: attaching refuses such a namespace until this is run.
    Repair {
        /// The namespace.
        namespace: String,
    },
}

/// Why `evm shm` failed.
enum Failure {
    /// A bad namespace, region, file or snapshot: exit code 2.
    Usage(String),
    /// Standard output could not be written: exit code 6.
    Output(std::io::Error),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Usage(message)
    }
}

/// Runs `evm shm`.
pub(crate) fn run(args: ShmArgs) -> ExitCode {
    let root = args.root.clone().unwrap_or_else(shm_mapped::default_root);
    let access = if args.group {
        Access::Group
    } else {
        Access::Private
    };
    match execute(&args.command, &root, access) {
        Ok(text) => ExitCode::printed(output::print(&text)),
        Err(Failure::Usage(e)) => ExitCode::usage(format!("shm: {e}")),
        Err(Failure::Output(e)) => output::stdout_failed(e),
    }
}

fn open(root: &Path, namespace: &str, access: Access) -> Result<Namespace, String> {
    // Listing or showing must not create a namespace that is not there.
    let dir = root.join(namespace);
    if !dir.is_dir() {
        return Err(format!("no namespace `{namespace}` in {}", root.display()));
    }
    Namespace::open_with(root, namespace, access).map_err(|e| e.to_string())
}

/// Runs one command; `Ok` holds what to print on standard output. `ls` streams its
/// lines instead (a namespace may hold many regions) and returns nothing more.
fn execute(command: &ShmCommand, root: &Path, access: Access) -> Result<String, Failure> {
    let mut text = String::new();
    match command {
        ShmCommand::Ls { namespace, json } => {
            let ns = open(root, namespace, access)?;
            let listed = ns.list().map_err(|e| e.to_string())?;
            let mut out = std::io::stdout().lock();
            let mut line = |line: String| writeln!(out, "{line}").map_err(Failure::Output);
            if !json {
                line(format!(
                    "{:<20} {:<16} {:>10} {:<42} {:<10} {:>6} last access",
                    "handle", "name", "size", "owner", "lifetime", "commit"
                ))?;
            }
            for entry in listed {
                match &entry.status {
                    Ok(status) if *json => line(status_json(status, &entry).to_string())?,
                    Ok(status) => line(status_line(status, &entry))?,
                    Err(e) => output::eprintln(&format!("warning: {e}")),
                }
            }
            if let Err(e) = ns.check_generations() {
                output::eprintln(&format!("warning: {e}"));
            }
            out.flush().map_err(Failure::Output)?;
            Ok(text)
        }
        ShmCommand::Show {
            namespace,
            region,
            offset,
            len,
            wait_ms,
        } => {
            let ns = open(root, namespace, access)?;
            let region = ns.open_region(region).map_err(|e| e.to_string())?;
            let wait = Duration::from_millis(*wait_ms);
            let rolled_back = region.lock(wait).map_err(|e| match e {
                MappedError::LockTimeout { holder, .. } => format!(
                    "{}: a transaction is open in process {holder}: its bytes are not committed; \
                     try again when it ends (the last committed state is restored if it dies)",
                    region.path().display()
                ),
                other => other.to_string(),
            })?;
            if rolled_back > 0 {
                output::eprintln(&format!(
                    "note: rolled back {rolled_back} pages of a transaction its dead process left open"
                ));
            }
            let size = region.size();
            let start = (*offset).min(size);
            let end = match len {
                Some(len) => offset.saturating_add(*len).min(size),
                None => size.min(start + 4096),
            };
            let mut bytes = vec![0u8; (end - start) as usize];
            let read = region.read_at(start, &mut bytes, wait);
            region.unlock(None).map_err(|e| e.to_string())?;
            read.map_err(|e| e.to_string())?;
            Ok(hex_dump(start, &bytes))
        }
        ShmCommand::Rm {
            namespace,
            region,
            force,
        } => {
            let ns = open(root, namespace, access)?;
            let path = ns.remove(region, *force).map_err(|e| e.to_string())?;
            let _ = writeln!(text, "removed {}", path.display());
            Ok(text)
        }
        ShmCommand::Dump {
            namespace,
            out,
            compression,
        } => {
            let compression = compression
                .as_deref()
                .map(|c| c.parse::<Compression>())
                .transpose()
                .map_err(|_| "compression: expected none, lz4 or zstd".to_string())?;
            let ns = open(root, namespace, access)?;
            let report = dump_namespace(&ns, out, compression).map_err(|e| e.to_string())?;
            let _ = writeln!(
                text,
                "dumped {} regions, {} bytes into {} ({} bytes)",
                report.regions,
                report.raw_bytes,
                out.display(),
                report.file_bytes
            );
            Ok(text)
        }
        ShmCommand::Load { input, namespace } => {
            // Read and check the whole snapshot before the namespace is touched, so that a
            // bad file (or a device such as /dev/zero) creates nothing.
            let bytes = shm_statetest::read_bytes_capped(input, MAX_SNAPSHOT_BYTES)
                .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
            let snapshot = Snapshot::decode(&bytes, input).map_err(|e| e.to_string())?;
            let dir = root.join(namespace);
            let existed = dir.exists();
            let loaded =
                Namespace::open_with(root, namespace, access).and_then(|ns| snapshot.restore(&ns));
            match loaded {
                Ok(report) => {
                    let _ = writeln!(
                        text,
                        "loaded {} regions, {} bytes into namespace {namespace}",
                        report.regions, report.raw_bytes
                    );
                    Ok(text)
                }
                Err(e) => {
                    // The load made no region (all or none); a namespace it created for
                    // them goes too, so that nothing is left behind.
                    if !existed && dir.is_dir() {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    Err(Failure::Usage(e.to_string()))
                }
            }
        }
        ShmCommand::Repair { namespace } => {
            let ns = open(root, namespace, access)?;
            if ns.check_generations().is_ok() {
                let _ = writeln!(
                    text,
                    "namespace {namespace}: the generations table is intact; nothing to do"
                );
                return Ok(text);
            }
            let indexes = ns.rebuild_generations().map_err(|e| e.to_string())?;
            let _ = writeln!(
                text,
                "namespace {namespace}: rebuilt the generations table ({indexes} indexes) from the region files"
            );
            output::eprintln(
                "warning: handles of regions freed before the table was lost may be issued again",
            );
            Ok(text)
        }
    }
}

fn lifetime(status: &RegionStatus) -> &'static str {
    if status.header.options.persistent {
        "persistent"
    } else {
        "tx"
    }
}

/// Who holds or uses the region, in words.
fn users(status: &RegionStatus, entry: &ListedRegion) -> String {
    let mut words = String::new();
    match status.holder {
        Some(holder) if holder.alive => words.push_str(&format!(
            " (locked by pid {}: a transaction is open)",
            holder.pid
        )),
        Some(holder) => words.push_str(&format!(
            " (locked by pid {}, which is dead: the next lock rolls its transaction back)",
            holder.pid
        )),
        None if status.undo_pending => {
            words.push_str(" (a dead process left a transaction open: the next lock rolls it back)")
        }
        None => {}
    }
    if entry.in_use {
        words.push_str(" [in use]");
    }
    if status.freed {
        words.push_str(" [freed]");
    }
    words
}

fn status_line(status: &RegionStatus, entry: &ListedRegion) -> String {
    let header = &status.header;
    let handle = format!("{:#x}", header.handle.to_u64());
    format!(
        "{handle:<20} {:<16} {:>10} {:<42} {:<10} {:>6} {}{}",
        header.name.as_deref().unwrap_or("-"),
        status.size,
        header.owner.to_string(),
        lifetime(status),
        status.commit_generation,
        utc(status.last_access_ms),
        users(status, entry),
    )
}

fn status_json(status: &RegionStatus, entry: &ListedRegion) -> serde_json::Value {
    let header = &status.header;
    serde_json::json!({
        "handle": format!("{:#x}", header.handle.to_u64()),
        "index": header.handle.index(),
        "generation": header.handle.generation(),
        "name": header.name,
        "size": status.size,
        "capacity": header.capacity,
        "owner": header.owner.to_string(),
        "persistent": header.options.persistent,
        "read": header.permissions.contains(Permissions::READ),
        "write": header.permissions.contains(Permissions::WRITE),
        "commit_generation": status.commit_generation,
        "last_access_ms": status.last_access_ms,
        "last_access": utc(status.last_access_ms),
        "lock_pid": status.holder.map(|h| h.pid).unwrap_or(0),
        "lock_holder_alive": status.holder.map(|h| h.alive),
        "undo_pending": status.undo_pending,
        "in_use": entry.in_use,
        "freed": status.freed,
        "creator_pid": header.creator_pid,
    })
}

/// `YYYY-MM-DD HH:MM:SS UTC` of ms since the epoch (civil-from-days, no time-zone database).
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn hex_dump(start: u64, bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, line) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!(
            "{:08x}  {}\n",
            start + 16 * i as u64,
            hex.join(" ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_709_251_199_000), "2024-02-29 23:59:59 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
