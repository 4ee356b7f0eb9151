//! The colour scale of every heatmap (terminal, SVG, HTML): matplotlib's "Blues", as in
//! `sns.heatmap(cmap="Blues")`, from pale (low) to dark blue (high).

/// ColorBrewer Blues, 9 classes: the stops matplotlib interpolates linearly.
pub const BLUES: [[u8; 3]; 9] = [
    [0xf7, 0xfb, 0xff],
    [0xde, 0xeb, 0xf7],
    [0xc6, 0xdb, 0xef],
    [0x9e, 0xca, 0xe1],
    [0x6b, 0xae, 0xd6],
    [0x42, 0x92, 0xc6],
    [0x21, 0x71, 0xb5],
    [0x08, 0x51, 0x9c],
    [0x08, 0x30, 0x6b],
];

/// The colour of `v` in 0..=1 (clamped; NaN is the low end).
pub fn blues(v: f32) -> [u8; 3] {
    let x = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) } * (BLUES.len() - 1) as f32;
    let i = (x.floor() as usize).min(BLUES.len() - 2);
    let f = x - i as f32;
    let (a, b) = (BLUES[i], BLUES[i + 1]);
    std::array::from_fn(|c| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * f).round() as u8)
}

/// ColorBrewer RdBu, 11 classes, from blue (negative) through white (0) to red (positive):
/// matplotlib's `RdBu_r`, the usual map for signed values.
pub const RDBU: [[u8; 3]; 11] = [
    [0x05, 0x30, 0x61],
    [0x21, 0x66, 0xac],
    [0x43, 0x93, 0xc3],
    [0x92, 0xc5, 0xde],
    [0xd1, 0xe5, 0xf0],
    [0xf7, 0xf7, 0xf7],
    [0xfd, 0xdb, 0xc7],
    [0xf4, 0xa5, 0x82],
    [0xd6, 0x60, 0x4d],
    [0xb2, 0x18, 0x2b],
    [0x67, 0x00, 0x1f],
];

/// The colour of `v` in -1..=1 (clamped) on [`RDBU`]: white at 0; NaN is white too.
pub fn diverging(v: f32) -> [u8; 3] {
    let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
    let x = (v + 1.0) / 2.0 * (RDBU.len() - 1) as f32;
    let i = (x.floor() as usize).min(RDBU.len() - 2);
    let f = x - i as f32;
    let (a, b) = (RDBU[i], RDBU[i + 1]);
    std::array::from_fn(|c| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * f).round() as u8)
}

/// `v` placed on `lo..=hi` as 0..=1 (0.5 when the range is empty).
pub fn unit(v: f32, lo: f32, hi: f32) -> f32 {
    if hi > lo {
        (v - lo) / (hi - lo)
    } else {
        0.5
    }
}

/// An sRGB channel as linear light.
fn linear(u: u8) -> f32 {
    let s = u as f32 / 255.0;
    if s <= 0.04045 {
        s / 12.92
    } else {
        ((s + 0.055) / 1.055).powf(2.4)
    }
}

/// Text on this background reads better in white (seaborn's rule: relative luminance
/// below 0.408).
pub fn needs_light_text(c: [u8; 3]) -> bool {
    0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2]) < 0.408
}

/// Björn Ottosson's Oklab: a space where Euclidean distance follows perceived difference,
/// so the nearest palette colour keeps the hue (plain RGB distance turns dark blue teal).
fn oklab(c: [u8; 3]) -> [f32; 3] {
    let [r, g, b] = c.map(linear);
    let l = (0.412_221_46 * r + 0.536_332_55 * g + 0.051_445_995 * b).cbrt();
    let m = (0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b).cbrt();
    let s = (0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b).cbrt();
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

/// Indices 16..=255 of the xterm palette (6×6×6 cube, then 24 greys) in Oklab; 0..=15 are
/// left out because terminals redefine them.
fn xterm_oklab() -> &'static [[f32; 3]; 240] {
    static TABLE: std::sync::OnceLock<[[f32; 3]; 240]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
        std::array::from_fn(|i| {
            let rgb = if i < 216 {
                [LEVELS[i / 36], LEVELS[i / 6 % 6], LEVELS[i % 6]]
            } else {
                [8 + 10 * (i - 216) as u8; 3]
            };
            oklab(rgb)
        })
    })
}

/// The perceptually nearest colour of the xterm 256-colour palette.
pub fn ansi256(c: [u8; 3]) -> u8 {
    let target = oklab(c);
    let dist = |p: &[f32; 3]| (0..3).map(|i| (p[i] - target[i]).powi(2)).sum::<f32>();
    let nearest = xterm_oklab()
        .iter()
        .enumerate()
        .min_by(|a, b| dist(a.1).total_cmp(&dist(b.1)))
        .map_or(0, |(i, _)| i);
    16 + nearest as u8
}

/// `#rrggbb`.
pub fn hex(c: [u8; 3]) -> String {
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blues_hits_its_stops_and_ends() {
        assert_eq!(blues(0.0), BLUES[0]);
        assert_eq!(blues(1.0), BLUES[8]);
        assert_eq!(blues(0.5), BLUES[4]);
        assert_eq!(blues(2.0), BLUES[8]);
        assert_eq!(blues(f32::NAN), BLUES[0]);
    }

    #[test]
    fn diverging_is_white_at_zero() {
        assert_eq!(diverging(0.0), RDBU[5]);
        assert_eq!(diverging(-1.0), RDBU[0]);
        assert_eq!(diverging(5.0), RDBU[10]);
        assert_eq!(diverging(f32::NAN), RDBU[5]);
    }

    #[test]
    fn ansi256_picks_cube_and_grey() {
        assert_eq!(ansi256([0, 0, 0]), 16);
        assert_eq!(ansi256([255, 255, 255]), 231);
        assert_eq!(ansi256([128, 128, 128]), 244);
        // Blues' darkest stop stays blue (navy 18), not teal (23) as in RGB distance.
        assert_eq!(ansi256([0x08, 0x30, 0x6b]), 18);
        assert!(needs_light_text(BLUES[8]) && !needs_light_text(BLUES[0]));
    }
}
