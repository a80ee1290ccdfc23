//! `evm shm`: inspect and manage a mapped shared-memory namespace from the shell
//! (list, show, remove, dump and load regions).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use shm_mapped::{dump_namespace, load_snapshot, MappedRegion, Namespace, RegionStatus};
use shm_primitives::{Compression, Permissions};

use crate::ExitCode;

/// Arguments of `evm shm`.
#[derive(Args, Debug)]
pub(crate) struct ShmArgs {
    #[command(subcommand)]
    command: ShmCommand,
    /// Root directory of namespaces (default: /dev/shm).
    #[arg(long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum ShmCommand {
    /// List the regions of a namespace: handle, name, size, owner, persistence, last access.
    Ls {
        /// The namespace.
        namespace: String,
        /// One JSON object per region.
        #[arg(long)]
        json: bool,
    },
    /// Print a range of a region's bytes in hex (16 per line, with offsets).
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
    },
    /// Remove a region (its file and undo log) from a namespace.
    Rm {
        /// The namespace.
        namespace: String,
        /// The region: its name, its handle (decimal or 0x hex) or #INDEX.
        region: String,
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
}

/// Runs `evm shm`.
pub(crate) fn run(args: ShmArgs) -> ExitCode {
    let root = args.root.clone().unwrap_or_else(shm_mapped::default_root);
    match execute(&args.command, &root) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => ExitCode::usage(format!("shm: {e}")),
    }
}

fn open(root: &Path, namespace: &str) -> Result<Namespace, String> {
    // Listing or showing must not create a namespace that is not there.
    let dir = root.join(namespace);
    if !dir.is_dir() {
        return Err(format!("no namespace `{namespace}` in {}", root.display()));
    }
    Namespace::open(root, namespace).map_err(|e| e.to_string())
}

fn execute(command: &ShmCommand, root: &Path) -> Result<(), String> {
    match command {
        ShmCommand::Ls { namespace, json } => {
            let ns = open(root, namespace)?;
            let listed = ns.list().map_err(|e| e.to_string())?;
            if !json {
                println!(
                    "{:<20} {:<16} {:>10} {:<42} {:<10} {:>6} last access",
                    "handle", "name", "size", "owner", "lifetime", "commit"
                );
            }
            for entry in listed {
                match entry.status {
                    Ok(status) if *json => println!("{}", status_json(&status)),
                    Ok(status) => println!("{}", status_line(&status)),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            Ok(())
        }
        ShmCommand::Show {
            namespace,
            region,
            offset,
            len,
        } => {
            let ns = open(root, namespace)?;
            let region = ns.open_region(region).map_err(|e| e.to_string())?;
            print!("{}", hex_dump(&region, *offset, *len));
            Ok(())
        }
        ShmCommand::Rm { namespace, region } => {
            let ns = open(root, namespace)?;
            let path = ns.remove(region).map_err(|e| e.to_string())?;
            println!("removed {}", path.display());
            Ok(())
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
            let ns = open(root, namespace)?;
            let report = dump_namespace(&ns, out, compression).map_err(|e| e.to_string())?;
            println!(
                "dumped {} regions, {} bytes into {} ({} bytes)",
                report.regions,
                report.raw_bytes,
                out.display(),
                report.file_bytes
            );
            Ok(())
        }
        ShmCommand::Load { input, namespace } => {
            let ns = Namespace::open(root, namespace).map_err(|e| e.to_string())?;
            let report = load_snapshot(input, &ns).map_err(|e| e.to_string())?;
            println!(
                "loaded {} regions, {} bytes into namespace {namespace}",
                report.regions, report.raw_bytes
            );
            Ok(())
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

fn status_line(status: &RegionStatus) -> String {
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
        if status.lock_pid != 0 {
            format!(" (locked by pid {})", status.lock_pid)
        } else {
            String::new()
        }
    )
}

fn status_json(status: &RegionStatus) -> serde_json::Value {
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
        "lock_pid": status.lock_pid,
        "undo_pending": status.undo_pending,
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

fn hex_dump(region: &MappedRegion, offset: u64, len: Option<u64>) -> String {
    let size = region.size();
    let start = offset.min(size);
    let end = match len {
        Some(len) => offset.saturating_add(len).min(size),
        None => size.min(start + 4096),
    };
    let bytes = &region.data()[start as usize..end as usize];
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
