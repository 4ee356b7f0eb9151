//! The colour maps of every heatmap (terminal, SVG, HTML): matplotlib's "Blues" by default,
//! as in `sns.heatmap(cmap="Blues")`, from pale (low) to dark blue (high); "RdBu_r" for
//! signed values; "viridis", perceptually uniform, for figures (`--cmap`).

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
    ramp(&BLUES, v)
}

/// The colour at `x` in 0..=1 (clamped; NaN is the low end) of a map given by evenly spaced
/// stops, interpolated linearly as matplotlib's `LinearSegmentedColormap.from_list` does.
pub fn ramp(stops: &[[u8; 3]], x: f32) -> [u8; 3] {
    let x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) } * (stops.len() - 1) as f32;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f32;
    let (a, b) = (stops[i], stops[i + 1]);
    std::array::from_fn(|c| (a[c] as f32 + (b[c] as f32 - a[c] as f32) * f).round() as u8)
}

/// matplotlib's viridis at 0, 0.1, …, 1 (entries 0, 26, 51, … 255 of its 256).
pub const VIRIDIS: [[u8; 3]; 11] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x25, 0x76],
    [0x41, 0x44, 0x87],
    [0x35, 0x5f, 0x8d],
    [0x2a, 0x78, 0x8e],
    [0x21, 0x91, 0x8c],
    [0x22, 0xa8, 0x84],
    [0x42, 0xbe, 0x71],
    [0x7a, 0xd1, 0x51],
    [0xbd, 0xdf, 0x26],
    [0xfd, 0xe7, 0x25],
];

/// A colour map a figure is drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cmap {
    /// Pale to dark blue: matplotlib's Blues.
    #[default]
    Blues,
    /// Dark violet through teal to yellow: matplotlib's viridis, perceptually uniform.
    Viridis,
    /// Blue, white at the middle, red: matplotlib's RdBu_r, for signed values.
    RdBu,
}

impl Cmap {
    pub fn stops(self) -> &'static [[u8; 3]] {
        match self {
            Cmap::Blues => &BLUES,
            Cmap::Viridis => &VIRIDIS,
            Cmap::RdBu => &RDBU,
        }
    }

    /// matplotlib's name of the map.
    pub fn name(self) -> &'static str {
        match self {
            Cmap::Blues => "Blues",
            Cmap::Viridis => "viridis",
            Cmap::RdBu => "RdBu_r",
        }
    }

    /// White at the middle: the range is laid out symmetric around 0.
    pub fn diverging(self) -> bool {
        self == Cmap::RdBu
    }

    /// The colour at `x` in 0..=1.
    pub fn at(self, x: f32) -> [u8; 3] {
        ramp(self.stops(), x)
    }
}

/// How a figure's values become colours: `--cmap`, `--scale`, `--vmin`, `--vmax`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColourScale {
    pub cmap: Cmap,
    pub scale: Scale,
    /// The value at the low end (clamped below); default 0, or 1e-4 on a log scale.
    pub vmin: Option<f32>,
    /// The value at the high end (clamped above); default 1.
    pub vmax: Option<f32>,
}

/// Where a probability falls between the ends of the colour map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// `vmin..vmax`, 0..1 unless given: every map on the same absolute scale.
    #[default]
    Absolute,
    /// 0 to the largest value of all the maps shown, so a diffuse head is not pale.
    Global,
    /// 0 to the largest value of each query's row: where each query looks most.
    Row,
    /// log10 from `vmin` (1e-4 unless given) to `vmax` (1): the small weights too.
    Log,
}

/// A [`ColourScale`] made concrete for the values of one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    pub cmap: Cmap,
    pub scale: Scale,
    pub lo: f32,
    pub hi: f32,
    /// Values below zero are possible (scores): a diverging map is centred on 0 over
    /// `-max(|lo|, |hi|)..max`; probabilities use its upper half, white to red.
    pub signed: bool,
}

/// The smallest probability a log scale shows by default.
const LOG_FLOOR: f32 = 1e-4;

impl ColourScale {
    /// The ramp of probability maps whose largest value is `max`.
    pub fn probabilities(&self, max: f32) -> Ramp {
        let lo = self.vmin.unwrap_or(match self.scale {
            Scale::Log => LOG_FLOOR,
            _ => 0.0,
        });
        let hi = self.vmax.unwrap_or(match self.scale {
            Scale::Global if max > 0.0 => max,
            _ => 1.0,
        });
        Ramp {
            cmap: self.cmap,
            scale: self.scale,
            lo,
            hi,
            signed: false,
        }
    }

    /// The ramp of signed values between `lo` and `hi` (pre-softmax scores): linear from the
    /// smallest to the largest, or symmetric around 0 on a diverging map.
    pub fn signed(&self, lo: f32, hi: f32) -> Ramp {
        let m = lo.abs().max(hi.abs());
        let (lo, hi) = if self.cmap.diverging() {
            (-m, m)
        } else {
            (lo, hi)
        };
        Ramp {
            cmap: self.cmap,
            scale: Scale::Absolute,
            lo,
            hi,
            signed: true,
        }
    }
}

impl Ramp {
    /// Where `v` falls, 0..=1, with `row_max` the largest value of its row ([`Scale::Row`]).
    pub fn position(&self, v: f32, row_max: f32) -> f32 {
        match self.scale {
            Scale::Row if row_max > 0.0 => v / row_max,
            Scale::Row => 0.0,
            Scale::Log => {
                let (lo, hi) = (self.lo.max(f32::MIN_POSITIVE), self.hi);
                (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
            }
            Scale::Absolute | Scale::Global => unit(v, self.lo, self.hi),
        }
        .clamp(0.0, 1.0)
    }

    /// The colour at position `x` (0..=1) of this ramp.
    pub fn at(&self, x: f32) -> [u8; 3] {
        match self.cmap.diverging() && !self.signed {
            true => self.cmap.at(0.5 + x / 2.0),
            false => self.cmap.at(x),
        }
    }

    pub fn colour(&self, v: f32, row_max: f32) -> [u8; 3] {
        self.at(self.position(v, row_max))
    }

    /// Labels of the colour bar, each at its position 0..=1.
    pub fn ticks(&self) -> Vec<(f32, String)> {
        match self.scale {
            Scale::Row => vec![(0.0, "0".into()), (1.0, "row max".into())],
            Scale::Log => {
                let (a, b) = (
                    self.lo.max(f32::MIN_POSITIVE).log10().ceil() as i32,
                    self.hi.log10().floor() as i32,
                );
                (a..=b)
                    .map(|e| {
                        let v = 10f32.powi(e);
                        (self.position(v, 0.0), format!("{v}"))
                    })
                    .collect()
            }
            Scale::Absolute | Scale::Global => (0..=5)
                .map(|k| {
                    let x = k as f32 / 5.0;
                    (x, format!("{:.2}", self.lo + (self.hi - self.lo) * x))
                })
                .collect(),
        }
    }
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
    ramp(&RDBU, (v + 1.0) / 2.0)
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

/// The text colour that reads on `c`: white on dark, black on light.
pub fn ink(c: [u8; 3]) -> [u8; 3] {
    if needs_light_text(c) {
        [255; 3]
    } else {
        [0; 3]
    }
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
    fn scales_place_values() {
        let default = ColourScale::default().probabilities(0.3);
        assert_eq!(default.colour(0.5, 1.0), blues(0.5));
        let global = ColourScale {
            scale: Scale::Global,
            ..Default::default()
        }
        .probabilities(0.25);
        assert_eq!(global.position(0.25, 1.0), 1.0);
        let row = ColourScale {
            scale: Scale::Row,
            ..Default::default()
        }
        .probabilities(1.0);
        assert_eq!(row.position(0.1, 0.2), 0.5);
        let log = ColourScale {
            scale: Scale::Log,
            ..Default::default()
        }
        .probabilities(1.0);
        assert_eq!(log.position(0.01, 1.0), 0.5);
        assert_eq!(log.position(0.0, 1.0), 0.0);
        assert_eq!(log.ticks().len(), 5);
        let fixed = ColourScale {
            vmin: Some(0.2),
            vmax: Some(0.4),
            ..Default::default()
        }
        .probabilities(1.0);
        assert!((fixed.position(0.3, 1.0) - 0.5).abs() < 1e-6);
        assert_eq!(fixed.position(0.9, 1.0), 1.0);
        // A diverging map: probabilities white to red, scores centred on 0.
        let rdbu = ColourScale {
            cmap: Cmap::RdBu,
            ..Default::default()
        };
        assert_eq!(rdbu.probabilities(1.0).colour(0.0, 1.0), RDBU[5]);
        assert_eq!(rdbu.signed(-2.0, 4.0).colour(0.0, 1.0), RDBU[5]);
        assert_eq!(rdbu.signed(-2.0, 4.0).colour(-4.0, 1.0), RDBU[0]);
    }

    #[test]
    fn viridis_runs_from_violet_to_yellow() {
        assert_eq!(Cmap::Viridis.at(0.0), [0x44, 0x01, 0x54]);
        assert_eq!(Cmap::Viridis.at(1.0), [0xfd, 0xe7, 0x25]);
        assert_eq!(Cmap::Viridis.at(0.5), VIRIDIS[5]);
        assert_eq!(Cmap::Blues.at(0.25), blues(0.25));
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
