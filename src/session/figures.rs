//! The figure flags as the renderers take them.

/// A grid figure's `--title` and `--cmap`.
pub fn grid_style(a: &crate::cli::GridFigureArgs) -> crate::render::svg::Style<'_> {
    crate::render::svg::Style {
        title: a.title.as_deref(),
        cmap: a.cmap.map(cmap),
    }
}

/// The colour map `--cmap` names.
pub fn cmap(c: crate::cli::CmapArg) -> crate::render::color::Cmap {
    use crate::cli::CmapArg;
    use crate::render::color::Cmap;
    match c {
        CmapArg::Blues => Cmap::Blues,
        CmapArg::Viridis => Cmap::Viridis,
        CmapArg::Rdbu => Cmap::RdBu,
    }
}
