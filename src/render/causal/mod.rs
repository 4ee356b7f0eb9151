//! The causal family's renderers: the layer × position and head grids of `patch`,
//! `ablate`, `attribute` and `heads` (`grids`), and `circuit`'s edges, graph and faithfulness
//! curve (`edges`).

pub mod edges;
pub mod grids;
