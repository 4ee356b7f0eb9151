//! The format seam: one printer per output format (`printer`), JSON with non-finite numbers
//! as strings (`json`), CSV and TSV (`delimited`) from each report's tidy tables (`tidy`).

pub mod delimited;
pub mod json;
pub mod printer;
mod tidy;
