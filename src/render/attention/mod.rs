//! The attention family's renderers: terminal heatmaps of patterns and scores, the neuron
//! view, a head's stages, the logit lens grid, and the `report` page.

pub mod figure;
pub mod heatmap;
pub mod lens;
pub mod neuron;
pub mod page;
pub mod stages;
pub mod table;
