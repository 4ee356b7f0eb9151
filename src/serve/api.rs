//! The API's requests as the command line's arguments: `POST /api/COMMAND` with a JSON
//! object of the command's options (long flags with `-` as `_`; positionals by their name,
//! `text` for TEXT) becomes `gpt2-inspect COMMAND … --json`'s argument list, parsed by the
//! same clap definition, so the API and the command line cannot drift. `GET /api` lists the
//! commands and their options from that definition too.

use clap::CommandFactory;
use serde_json::{json, Map, Value};

use crate::cli::Cli;

/// The commands the API answers: every command that prints a JSON report and writes no
/// file of its own (`dump` and `report` write files; `completions` and `man` are not about
/// a model; `serve` is this).
pub const COMMANDS: &[&str] = &[
    "tokenize",
    "next",
    "attention",
    "info",
    "trace",
    "embed",
    "hidden",
    "lens",
    "hooks",
    "score",
    "generate",
    "patch",
    "circuit",
    "ablate",
    "attribute",
    "saliency",
    "heads",
    "features",
    "feature",
    "graph",
    "transcode",
];

/// Options the API refuses, with why: the model is the server's, the answer is JSON, and a
/// request names no file on the server's disk.
const REFUSED: &[(&str, &str)] = &[
    ("model", "the model is chosen when the server starts"),
    ("revision", "the model is chosen when the server starts"),
    ("device", "the device is chosen when the server starts"),
    ("dtype", "the dtype is chosen when the server starts"),
    ("json", "the API always answers JSON"),
    ("jsonl", "the API always answers JSON"),
    ("csv", "ask POST /api/COMMAND?as=csv for the CSV"),
    ("tsv", "ask POST /api/COMMAND?as=tsv for the TSV"),
    ("color", "the API answers JSON"),
    ("svg", "ask POST /api/COMMAND?as=svg for the figure"),
    ("dot", "the API writes no file: draw from the JSON"),
    ("html", "the API writes no file: draw from the JSON"),
    ("output", "the API writes no file"),
    (
        "raw",
        "the API writes no file: the unpruned graph is the command line's (--raw)",
    ),
    (
        "transcoders_revision",
        "the transcoders are chosen when the server starts",
    ),
    (
        "file",
        "the API reads no file on the server: give the texts in \"text\"",
    ),
    (
        "lines",
        "the API reads no file on the server: give the texts in \"text\"",
    ),
    (
        "format",
        "BertViz's data is the command line's (--format bertviz)",
    ),
];

/// Global options a request may set.
const GLOBALS: &[&str] = &["prepend_bos"];

/// The name of the figure an `?as=svg` request has its command write (in a directory of
/// the request's own).
pub const SVG_NAME: &str = "view.svg";

/// What a request asks back: the JSON (`--json`), or with `?as=` what `--csv`, `--tsv` or
/// `--svg FILE` write (the figure into a temporary directory of the request's own).
#[derive(Debug)]
pub enum Form {
    Json,
    Csv,
    Tsv,
    Svg(tempfile::TempDir),
}

impl Form {
    /// From the URL's query: `as=json|csv|tsv|svg` (`token=` is the guard's).
    pub fn from_query(query: Option<&str>) -> Result<Form, Refused> {
        let asked = (query.unwrap_or("").split('&')).find_map(|kv| kv.strip_prefix("as="));
        match asked {
            None | Some("json") => Ok(Form::Json),
            Some("csv") => Ok(Form::Csv),
            Some("tsv") => Ok(Form::Tsv),
            Some("svg") => tempfile::tempdir()
                .map(Form::Svg)
                .map_err(|e| bad(format!("cannot make a directory for the figure: {e}"))),
            Some(other) => Err(bad(format!(
                "?as={other}: ask as=json, as=csv, as=tsv or as=svg"
            ))),
        }
    }

    /// The command line's flags for this form.
    fn flags(&self, command: &str, cmd: &clap::Command) -> Result<Vec<String>, Refused> {
        Ok(match self {
            Form::Json => vec!["--json".into()],
            Form::Csv => vec!["--csv".into()],
            Form::Tsv => vec!["--tsv".into()],
            Form::Svg(dir) => {
                if !cmd.get_arguments().any(|a| a.get_long() == Some("svg")) {
                    return Err(bad(format!("{command} draws no figure: ask JSON")));
                }
                let path = dir.path().join(SVG_NAME);
                vec![format!("--svg={}", path.display()), "--json".into()]
            }
        })
    }
}

/// Why a request cannot become a command line.
#[derive(Debug)]
pub enum Refused {
    /// No such command: 404.
    NotFound(String),
    /// A malformed request: 400.
    BadRequest(String),
}

/// The argument list of `command` with the options of `body` (a JSON object; empty: none),
/// as the command line would spell it with `--json` (or the flags `form` asks).
pub fn argv(command: &str, body: &[u8], form: &Form) -> Result<Vec<String>, Refused> {
    if !COMMANDS.contains(&command) {
        return Err(Refused::NotFound(format!(
            "unknown command {command:?}: GET /api lists the commands"
        )));
    }
    let options = match body.iter().all(u8::is_ascii_whitespace) {
        true => Map::new(),
        false => match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(bad(
                    "the body must be a JSON object of the command's options",
                ))
            }
            Err(e) => return Err(bad(format!("the body is not valid JSON: {e}"))),
        },
    };
    let cmd = subcommand(command);
    let mut flags = vec!["gpt2-inspect".to_string(), command.to_string()];
    let mut positionals: Vec<(usize, Vec<String>)> = Vec::new();
    for (key, value) in &options {
        let arg = allowed(command, &cmd, key)?;
        let values = values(key, value)?;
        match arg.get_long() {
            Some(long) if !arg.get_action().takes_values() => {
                let on =
                    (value.as_bool()).ok_or_else(|| bad(format!("{key}: give true or false")))?;
                flags.extend(on.then(|| format!("--{long}")));
            }
            Some(long) => flags.extend(values.iter().map(|v| format!("--{long}={v}"))),
            None => positionals.push((arg.get_index().unwrap_or(usize::MAX), values)),
        }
    }
    needs_text(command, &cmd, &options)?;
    if positionals.iter().flat_map(|(_, v)| v).any(|t| t == "-") {
        return Err(bad(
            "text \"-\" would read the server's standard input: give the text itself",
        ));
    }
    positionals.sort_by_key(|(i, _)| *i);
    flags.extend(form.flags(command, &cmd)?);
    flags.push("--".into());
    flags.extend(positionals.into_iter().flat_map(|(_, v)| v));
    Ok(flags)
}

/// The option `key` of `command`, when a request may set it to `value`.
fn allowed(command: &str, cmd: &clap::Command, key: &str) -> Result<clap::Arg, Refused> {
    if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
        return Err(bad(format!("{key}: {why}")));
    }
    let arg = (cmd.get_arguments())
        .find(|a| api_name(a) == key && !a.is_hide_set() && !a.is_global_set())
        .cloned();
    arg.or_else(|| global(key)).ok_or_else(|| {
        bad(format!(
            "unknown option {key:?} for {command}: GET /api lists its options"
        ))
    })
}

/// A command that reads its texts from standard input when given none is given some: the
/// server's standard input is not the request's.
fn needs_text(
    command: &str,
    cmd: &clap::Command,
    options: &Map<String, Value>,
) -> Result<(), Refused> {
    let has = |k: &str| options.get(k).is_some_and(|v| !v.is_null());
    if command == "heads" && !["text", "ids", "seq_len", "seed"].iter().any(|k| has(k)) {
        return Err(bad(
            "give text, ids, seq_len or seed: heads has no standard input here",
        ));
    }
    let takes_texts = cmd.get_arguments().any(|a| a.get_id() == "texts");
    if takes_texts && !has("text") && !has("ids") {
        return Err(bad(format!(
            "{command} needs \"text\" (a string or a list of strings) or \"ids\""
        )));
    }
    Ok(())
}

/// The JSON name of an option: its long flag with `-` as `_`, or a positional's name
/// (`text` for TEXT, `features` for `feature`'s IDS: `ids` is `--ids`, the tokens').
fn api_name(arg: &clap::Arg) -> String {
    match (arg.get_long(), arg.get_id().as_str()) {
        (Some(long), _) => long.replace('-', "_"),
        (None, "texts") => "text".into(),
        (None, "ids") => "features".into(),
        (None, id) => id.into(),
    }
}

/// A global option a request may set.
fn global(key: &str) -> Option<clap::Arg> {
    GLOBALS.contains(&key).then_some(())?;
    let cli = Cli::command();
    let arg = cli.get_arguments().find(|a| api_name(a) == key)?.clone();
    Some(arg)
}

/// A JSON value as the command line's values: a string or number as itself, a list of
/// numbers as one comma-separated value (`--ids 464,3797`), a list of strings or of lists
/// as the flag repeated; `null` as nothing.
fn values(key: &str, value: &Value) -> Result<Vec<String>, Refused> {
    let one = |v: &Value| -> Result<String, Refused> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Array(a) if a.iter().all(Value::is_number) => {
                Ok(a.iter().map(Value::to_string).collect::<Vec<_>>().join(","))
            }
            _ => Err(bad(format!(
                "{key}: give a string, a number, or a list of them"
            ))),
        }
    };
    match value {
        Value::Null => Ok(vec![]),
        Value::Array(a) if !a.iter().all(Value::is_number) => a.iter().map(one).collect(),
        v => Ok(vec![one(v)?]),
    }
}

fn bad(msg: impl Into<String>) -> Refused {
    Refused::BadRequest(msg.into())
}

/// The clap definition of `command`, built (so its global options are listed).
fn subcommand(command: &str) -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand(command)
        .cloned()
        .expect("a listed command")
}

/// `GET /api`: every command the API answers, with its options as requests name them, and
/// the SAEs the server serves.
pub fn index(saes: &[String], lenses: &[String], transcoders: &[String]) -> Value {
    let commands: Vec<Value> = COMMANDS
        .iter()
        .map(|&name| {
            let cmd = subcommand(name);
            let options: Vec<Value> = cmd
                .get_arguments()
                .filter(|a| !a.is_hide_set() && !a.is_global_set())
                .filter(|a| !REFUSED.iter().any(|(k, _)| *k == api_name(a)))
                .filter(|a| a.get_id() != "help")
                .map(|a| {
                    json!({
                        "name": api_name(a),
                        "positional": a.get_long().is_none(),
                        "takes_value": a.get_action().takes_values(),
                        "help": a.get_help().map(|h| h.to_string()),
                        "default": a.get_default_values().iter()
                            .map(|v| v.to_string_lossy().into_owned()).collect::<Vec<_>>(),
                        "values": a.get_possible_values().iter()
                            .map(|v| v.get_name().to_string()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "name": name,
                "about": cmd.get_about().map(|h| h.to_string()),
                "options": options,
            })
        })
        .collect();
    json!({
        "commands": commands, "globals": GLOBALS, "saes": saes, "lenses": lenses,
        "transcoders": transcoders,
    })
}
