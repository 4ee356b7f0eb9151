//! One session serves many calls: the model kept once (`Session::keep_model`), each call
//! with its own output, prints what the command line prints for the same arguments.

use clap::Parser;
use gpt2_inspect::cli::Cli;
use gpt2_inspect::commands::dispatch;
use gpt2_inspect::session::{Output, Session};
use gpt2_inspect::signals::TempFiles;

use crate::common::{cmd, model_dir};

/// What `dispatch` prints for `args` with a clone of `shared` answering JSON.
fn answered(shared: &Session, args: &[&str]) -> String {
    let dir = model_dir();
    let argv = [&["gpt2-inspect", "--model", dir.to_str().unwrap()], args].concat();
    let cli = Cli::try_parse_from(argv).unwrap();
    let session = shared.with_output(Output::json());
    let mut out = Vec::new();
    dispatch(&session, &cli.command, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// What the binary prints for `args` with `--json`.
fn printed(args: &[&str]) -> String {
    let out = cmd().args(args).arg("--json").output().unwrap();
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_kept_model_answers_as_the_command_line_prints() {
    let dir = model_dir();
    let argv = ["gpt2-inspect", "--model", dir.to_str().unwrap(), "info"];
    let cli = Cli::try_parse_from(argv).unwrap();
    let shared = Session::new(&cli.global, TempFiles::default()).unwrap();
    shared.keep_model().unwrap();
    let calls: [&[&str]; 5] = [
        &["next", "The cat sat on the", "-k", "3"],
        &["attention", "The cat sat", "--layer", "1", "--head", "2"],
        &["next", "A dog", "The cat sat on the", "-k", "2"],
        &["lens", "The cat sat on"],
        &[
            "patch",
            "--clean",
            "The cat sat on the",
            "--corrupt",
            "The dog sat on the",
            "--answer",
            " mat",
            "--wrong",
            " rug",
        ],
    ];
    for args in calls {
        assert_eq!(answered(&shared, args), printed(args), "{args:?}");
    }
    // The same call again, on the same kept model: the same answer.
    let again = answered(&shared, calls[0]);
    assert_eq!(again, printed(calls[0]));
}
