//! Every numeric argument of every command, walked: given far more than the model allows
//! (10⁹), a command either refuses it as misuse (exit 2, one line naming the flag) or runs
//! it within bounds (exit 0, a bounded output, in bounded time). The flags come from clap
//! itself, so a new numeric flag is walked without being listed here.

use std::any::TypeId;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use gpt2_inspect::cli::Cli;

use crate::common::{fixtures, model_dir};

/// A command's positionals and its other flags (with their values).
type Invocation = (Vec<&'static str>, Vec<(String, String)>);

/// A command's base invocation, enough to run.
fn base(command: &str, sae: &str) -> Option<Invocation> {
    let pair = [
        ("--clean", "The cat sat on the mat"),
        ("--corrupt", "The dog sat on the mat"),
        ("--answer", " the"),
        ("--wrong", " a"),
    ];
    let flags = |f: &[(&str, &str)]| {
        f.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let text = vec!["The cat sat on the mat"];
    Some(match command {
        "patch" | "circuit" => (vec![], flags(&pair)),
        "ablate" => (text, flags(&[("--answer", " the"), ("--head", "1.2")])),
        "attribute" => (text, flags(&[("--answer", " the")])),
        "attention" => (text, flags(&[("--layer", "1"), ("--head", "3")])),
        "features" => (text, flags(&[("--sae", sae)])),
        "feature" => (
            vec!["40", "The cat sat on the mat"],
            flags(&[("--sae", sae)]),
        ),
        "report" => (text, flags(&[("-o", "/dev/null")])),
        "dump" => (text, flags(&[("-o", "/dev/null")])),
        "info" | "hooks" => (vec![], vec![]),
        "serve" | "completions" | "man" => return None,
        _ => (text, vec![]),
    })
}

/// Whether clap parses `arg`'s values as numbers.
fn numeric(arg: &clap::Arg) -> bool {
    let t = arg.get_value_parser().type_id();
    [
        TypeId::of::<usize>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<i64>(),
        TypeId::of::<f32>(),
        TypeId::of::<f64>(),
    ]
    .iter()
    .any(|id| t == *id)
}

/// Runs `args` on the fixture, killed after `limit`: (exit code, stdout bytes, stderr).
fn run(args: &[String], limit: Duration) -> (Option<i32>, usize, String) {
    let mut child = Process::new(env!("CARGO_BIN_EXE_gpt2-inspect"))
        .arg("--model")
        .arg(model_dir())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    (
        code,
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_numeric_argument_is_bounded() {
    let sae = fixtures().join("saes/topk").display().to_string();
    let cli = Cli::command();
    let mut walked = 0;
    let mut wrong = Vec::new();
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let Some((positionals, flags)) = base(name, &sae) else {
            continue;
        };
        for arg in sub
            .get_arguments()
            .filter(|a| numeric(a) && !a.is_positional())
        {
            let Some(long) = arg.get_long() else { continue };
            let flag = format!("--{long}");
            let mut args = vec![name.to_string()];
            args.extend(positionals.iter().map(|s| s.to_string()));
            for (f, v) in flags.iter().filter(|(f, _)| *f != flag) {
                args.extend([f.clone(), v.clone()]);
            }
            args.extend([flag.clone(), "1000000000".into()]);
            walked += 1;
            let (code, out, err) = run(&args, Duration::from_secs(30));
            let named = err.contains(&flag)
                || err.contains(&format!("-{}", arg.get_short().unwrap_or('\0')));
            let fine = match code {
                Some(2) => named && !err.contains("panicked"),
                Some(0) => out < (1 << 20),
                _ => false,
            };
            if !fine {
                wrong.push(format!(
                    "{name} {flag} 1000000000: exit {code:?}, {out} bytes out: {}",
                    err.trim()
                ));
            }
        }
    }
    assert!(walked > 40, "walked {walked} numeric flags");
    assert!(
        wrong.is_empty(),
        "{} of {walked}:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
