//! The features family's renderers: an SAE's tokens × features heatmap and a feature's
//! dashboard page.

pub mod dashboard;
pub mod graph;
pub mod graph_svg;
pub mod heatmap;
pub mod table;
pub mod transcode;
