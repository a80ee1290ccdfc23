//! `bins/evm/src/statetest.rs` (the `evm statetest` module), compiled here against this crate
//! until the binary wires it in: argument parsing and exit codes.

mod common;

#[path = "../../../bins/evm/src/statetest.rs"]
mod statetest;

use clap::Parser;
use common::TempDir;
use std::process::ExitCode;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: statetest::StatetestArgs,
}

fn exit_code(args: &[&str]) -> ExitCode {
    let cli = Cli::try_parse_from(std::iter::once("evm").chain(args.iter().copied()))
        .expect("arguments parse");
    statetest::run(cli.args)
}

fn folder_with_add11() -> TempDir {
    let dir = TempDir::new("cli");
    dir.copy_fixture("stExample/add11.json");
    dir
}

#[test]
fn exit_code_0_when_everything_passes() {
    let dir = folder_with_add11();
    let path = dir.path().to_str().unwrap();
    assert_eq!(exit_code(&[path, "--no-progress"]), ExitCode::SUCCESS);
    assert_eq!(
        exit_code(&[
            path,
            "--no-progress",
            "--fork",
            "Cancun",
            "--run",
            "^add",
            "-j",
            "1"
        ]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        exit_code(&[path, "--no-progress", "--json", "--no-skip-file"]),
        ExitCode::SUCCESS
    );
}

#[test]
fn exit_code_1_on_a_failing_file() {
    let dir = folder_with_add11();
    dir.write("broken.json", "{ not json");
    let path = dir.path().to_str().unwrap();
    assert_eq!(exit_code(&[path, "--no-progress"]), ExitCode::from(1));
}

#[test]
fn skip_file_option_skips_the_failing_file() {
    let dir = folder_with_add11();
    dir.write("broken.json", "{ not json");
    let skip = dir.write("skip.txt", "broken.json # not a fixture\n");
    let path = dir.path().to_str().unwrap();
    let skip = skip.to_str().unwrap();
    assert_eq!(
        exit_code(&[path, "--no-progress", "--skip-file", skip]),
        ExitCode::SUCCESS
    );
}

#[test]
fn exit_code_2_on_usage_errors() {
    let dir = folder_with_add11();
    let path = dir.path().to_str().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    for args in [
        vec![missing, "--no-progress"],
        vec![path, "--no-progress", "--fork", "Cancoon"],
        vec![path, "--no-progress", "--run", "(unclosed"],
        vec![path, "--no-progress", "--skip-file", missing],
        vec![path, "--no-progress", "-j", "0"],
    ] {
        assert_eq!(exit_code(&args), ExitCode::from(2), "for {args:?}");
    }
}

#[test]
fn paths_are_required_and_skip_options_conflict() {
    assert!(Cli::try_parse_from(["evm"]).is_err());
    assert!(Cli::try_parse_from(["evm", "x", "--skip-file", "s", "--no-skip-file"]).is_err());
}
