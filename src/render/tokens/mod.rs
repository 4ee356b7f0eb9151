//! The tokens family's renderers: the tables of what the model reads and predicts.

pub mod table;
