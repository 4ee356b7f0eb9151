//! Every report's table view for `--csv` and `--tsv` (see [`crate::render::format::delimited`]): what its
//! table shows, a row per item, the numbers as computed.

mod attention;
mod causal;
mod features;
mod gradients;
mod tokens;

use crate::render::format::delimited::{Cell, Table};
use crate::reports::{HookRow, Prediction};

/// One part, named after the report's field.
fn one(name: &'static str, table: Table) -> Vec<(&'static str, Table)> {
    vec![(name, table)]
}

/// Ranked predictions, each row led by `lead`'s cells (`lead_columns` names them).
fn predictions(lead_columns: &[&'static str], rows: &[(Vec<Cell>, &[Prediction])]) -> Table {
    let columns = [
        lead_columns,
        &["rank", "id", "token", "prob", "logprob", "logit"],
    ]
    .concat();
    let mut t = Table::new(&columns);
    for (lead, ps) in rows {
        for p in *ps {
            let cells: [Cell; 6] = [
                p.rank.into(),
                p.id.into(),
                p.token.as_str().into(),
                p.prob.into(),
                p.logprob.into(),
                p.logit.into(),
            ];
            t.push([lead.clone(), cells.to_vec()].concat());
        }
    }
    t
}

/// A `[rows][cols]` matrix as `(row, col, value)` rows under the three names.
fn long<T: Copy + Into<Cell>>(names: [&'static str; 3], m: &[Vec<T>]) -> Table {
    let mut t = Table::new(&names);
    for (i, row) in m.iter().enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t.push(vec![i.into(), j.into(), v.into()]);
        }
    }
    t
}

fn hooks(rows: &[HookRow]) -> Table {
    let mut t = Table::new(&["hook", "shape"]);
    for h in rows {
        let dims: Vec<String> = (h.shape.iter())
            .map(|d| d.map_or("T".into(), |d| d.to_string()))
            .collect();
        t.push(vec![h.name.as_str().into(), dims.join("x").into()]);
    }
    t
}
