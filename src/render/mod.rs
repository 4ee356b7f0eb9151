//! Renderers: each writes a report to any `io::Write` and computes no model values.

pub mod json;
pub mod table;
