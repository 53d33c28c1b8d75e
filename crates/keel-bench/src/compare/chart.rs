//! Charts of a comparison: requests per second and p95 latency per cell, one bar per
//! target in each cell's group, written as SVG by hand (a few dozen elements; no plotting
//! crate needed) and rendered to PNG by `resvg` from that same SVG, so the two never
//! disagree.
//!
//! The RPS chart marks each bar's physical limit `min(c, cap) / L` with a dashed line
//! when the upstream latency is known: how far a bar stays below its line is the
//! efficiency column, visible at a glance.
//!
//! Text in the PNG needs a font. [`Fonts::system`] loads the system's fonts (fontconfig's
//! directories, `/usr/share/fonts`, …) and prefers DejaVu Sans (Debian's
//! `fonts-dejavu-core`). With no font at all the PNG still has every bar, grid line and
//! the limit marks, only without text; [`Fonts::family`] says which case it was, and
//! `report.md` repeats it. The SVG always has its text (the viewer brings the fonts).

use std::fmt::Write as _;
use std::sync::Arc;

use resvg::tiny_skia;
use resvg::usvg;
use resvg::usvg::fontdb;

use super::report::CompareReport;
use crate::error::CompareError;

/// Width of every chart, in SVG user units and PNG pixels.
pub const WIDTH: u32 = 960;
/// Height of every chart, in SVG user units and PNG pixels.
pub const HEIGHT: u32 = 540;

/// Font families asked for, in order; the SVG names them, the PNG uses the first found.
pub const FONT_FAMILIES: [&str; 4] = ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"];

/// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#666666",
];

const LEFT: f64 = 88.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 84.0;
const BOTTOM: f64 = 104.0;

/// One chart's data: `values[series][group]`, optional limits in the same shape.
#[derive(Debug, Clone)]
struct Chart {
    title: String,
    subtitle: String,
    y_title: String,
    groups: Vec<String>,
    series: Vec<String>,
    values: Vec<Vec<Option<f64>>>,
    limits: Option<Vec<Vec<Option<f64>>>>,
    /// Decimals of the value labels.
    label_decimals: usize,
}

/// The fonts for rendering PNG text, loaded once per set of charts.
#[derive(Debug, Clone)]
pub struct Fonts {
    db: Arc<fontdb::Database>,
    family: Option<String>,
}

impl Fonts {
    /// The system's fonts, preferring [`FONT_FAMILIES`] in order.
    pub fn system() -> Self {
        let mut db = fontdb::Database::new();
        db.load_system_fonts();
        Self::from_database(db)
    }

    /// No fonts: PNGs without text.
    pub fn none() -> Self {
        Self::from_database(fontdb::Database::new())
    }

    fn from_database(mut db: fontdb::Database) -> Self {
        let has = |db: &fontdb::Database, name: &str| {
            db.faces()
                .any(|f| f.families.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)))
        };
        let family = FONT_FAMILIES
            .iter()
            .find(|name| has(&db, name))
            .map(|s| s.to_string())
            .or_else(|| {
                db.faces()
                    .next()
                    .and_then(|f| f.families.first().map(|(n, _)| n.clone()))
            });
        if let Some(name) = &family {
            db.set_sans_serif_family(name.clone());
        }
        Self {
            db: Arc::new(db),
            family,
        }
    }

    /// The family PNG text is drawn with; `None` when no font was found (no text in PNGs).
    pub fn family(&self) -> Option<&str> {
        self.family.as_deref()
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A step of 1, 2, 2.5 or 5 × 10^k giving about `ticks` intervals up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    let raw = (max / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let n = raw / magnitude;
    let nice = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 2.5 {
        2.5
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn tick_label(v: f64, step: f64) -> String {
    // As many decimals as the step needs to be exact: 250 → 0, 0.5 → 1, 0.25 → 2.
    let decimals = (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6) as usize;
    format!("{v:.decimals$}")
}

impl Chart {
    fn render(&self) -> String {
        let (w, h) = (f64::from(WIDTH), f64::from(HEIGHT));
        let (plot_w, plot_h) = (w - LEFT - RIGHT, h - TOP - BOTTOM);
        let bottom = TOP + plot_h;
        let max = self
            .values
            .iter()
            .chain(self.limits.iter().flatten())
            .flatten()
            .flatten()
            .fold(0f64, |m, v| m.max(*v));
        let max = if max > 0.0 && max.is_finite() {
            max
        } else {
            1.0
        };
        let step = nice_step(max * 1.08, 5.0);
        let y_max = (max * 1.08 / step).ceil() * step;
        let y = |v: f64| bottom - (v / y_max) * plot_h;

        let mut s = String::new();
        let _ = write!(
            s,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">
<title>{title}</title>
<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>
<g font-family="{fonts}, sans-serif" fill="#222222">
<text x="24" y="36" font-size="20" font-weight="bold">{title}</text>
<text x="24" y="60" font-size="13" fill="#555555">{subtitle}</text>
"##,
            title = escape(&self.title),
            subtitle = escape(&self.subtitle),
            fonts = FONT_FAMILIES.join(", "),
        );

        // Grid and y axis.
        let mut v = 0.0;
        while v <= y_max + step / 2.0 {
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{x2:.1}" y2="{yy:.1}" stroke="#dddddd" stroke-width="1"/>
<text x="{tx:.1}" y="{ty:.1}" font-size="12" text-anchor="end" fill="#444444">{label}</text>"##,
                x2 = LEFT + plot_w,
                tx = LEFT - 8.0,
                ty = yy + 4.0,
                label = tick_label(v, step),
            );
            v += step;
        }
        let _ = writeln!(
            s,
            r##"<text x="22" y="{cy:.1}" font-size="13" text-anchor="middle" transform="rotate(-90 22 {cy:.1})">{t}</text>"##,
            cy = TOP + plot_h / 2.0,
            t = escape(&self.y_title),
        );

        // Bars.
        let groups = self.groups.len().max(1) as f64;
        let series = self.series.len().max(1) as f64;
        let group_w = plot_w / groups;
        let bar_w = group_w * 0.8 / series;
        for (gi, group) in self.groups.iter().enumerate() {
            let gx = LEFT + gi as f64 * group_w;
            let _ = writeln!(
                s,
                r##"<text x="{x:.1}" y="{y:.1}" font-size="14" text-anchor="middle">{g}</text>"##,
                x = gx + group_w / 2.0,
                y = bottom + 22.0,
                g = escape(group),
            );
            for (si, _) in self.series.iter().enumerate() {
                let x = gx + group_w * 0.1 + si as f64 * bar_w;
                let color = PALETTE[si % PALETTE.len()];
                let value = self
                    .values
                    .get(si)
                    .and_then(|r| r.get(gi))
                    .copied()
                    .flatten();
                let cx = x + bar_w / 2.0;
                let limit = self
                    .limits
                    .as_ref()
                    .and_then(|l| l.get(si))
                    .and_then(|r| r.get(gi))
                    .copied()
                    .flatten();
                match value {
                    Some(v) => {
                        let top = y(v);
                        let _ = writeln!(
                            s,
                            r##"<rect x="{x:.1}" y="{top:.1}" width="{bw:.1}" height="{bh:.1}" fill="{color}"/>"##,
                            x = x + 1.5,
                            bw = (bar_w - 3.0).max(1.0),
                            bh = (bottom - top).max(0.0),
                        );
                        let label = format!("{v:.prec$}", prec = self.label_decimals);
                        // Shrink the label to the bar's width (about 0.6 em per digit).
                        let size = (bar_w / (label.len() as f64 * 0.62)).clamp(7.0, 12.0);
                        // Above the bar, or above its limit line when that is just
                        // above the bar and would cross the label.
                        let ly = match limit.map(y) {
                            Some(limit_y) if limit_y < top && top - limit_y < size + 6.0 => {
                                limit_y - 4.0
                            }
                            _ => top - 4.0,
                        };
                        let _ = writeln!(
                            s,
                            r##"<text x="{cx:.1}" y="{ly:.1}" font-size="{size:.1}" text-anchor="middle">{label}</text>"##,
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            r##"<text x="{cx:.1}" y="{ly:.1}" font-size="11" text-anchor="middle" fill="#888888">n/a</text>"##,
                            ly = bottom - 4.0,
                        );
                    }
                }
                if let Some(l) = limit {
                    let _ = writeln!(
                        s,
                        r##"<line x1="{x1:.1}" y1="{ly:.1}" x2="{x2:.1}" y2="{ly:.1}" stroke="#222222" stroke-width="2" stroke-dasharray="5 3"/>"##,
                        // As wide as the bar: neighbours with the same limit stay apart.
                        x1 = x + 1.5,
                        x2 = x + (bar_w - 1.5).max(1.5),
                        ly = y(l),
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{bottom:.1}" x2="{x2:.1}" y2="{bottom:.1}" stroke="#222222" stroke-width="1"/>
<text x="{cx:.1}" y="{ty:.1}" font-size="13" text-anchor="middle" fill="#444444">Test (requests / concurrency)</text>"##,
            x2 = LEFT + plot_w,
            cx = LEFT + plot_w / 2.0,
            ty = bottom + 44.0,
        );

        // Legend: one row, wrapping when the names do not fit.
        let mut items: Vec<(Option<&str>, &str)> = self
            .series
            .iter()
            .enumerate()
            .map(|(si, name)| (Some(PALETTE[si % PALETTE.len()]), name.as_str()))
            .collect();
        if self.limits.iter().flatten().flatten().any(Option::is_some) {
            items.push((None, "physical limit min(c, cap) / L"));
        }
        let (mut lx, mut ly) = (LEFT, bottom + 72.0);
        for (color, text) in items {
            let width = 20.0 + text.chars().count() as f64 * 7.4 + 18.0;
            if lx + width > w - RIGHT && lx > LEFT {
                lx = LEFT;
                ly += 20.0;
            }
            match color {
                Some(color) => {
                    let _ = writeln!(
                        s,
                        r##"<rect x="{lx:.1}" y="{y:.1}" width="13" height="13" fill="{color}"/>"##,
                        y = ly - 11.0,
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r##"<line x1="{lx:.1}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}" stroke="#222222" stroke-width="2" stroke-dasharray="5 3"/>"##,
                        y = ly - 4.5,
                        x2 = lx + 14.0,
                    );
                }
            }
            let _ = writeln!(
                s,
                r##"<text x="{tx:.1}" y="{ly:.1}" font-size="13">{t}</text>"##,
                tx = lx + 20.0,
                t = escape(text),
            );
            lx += width;
        }
        s.push_str("</g>\n</svg>\n");
        s
    }
}

fn subtitle(report: &CompareReport, what: &str) -> String {
    let latency = match report.upstream_latency_secs {
        Some(l) => format!("upstream latency {}", super::table::format_latency(Some(l))),
        None => "upstream latency not given".to_string(),
    };
    format!(
        "{what} · {latency} · {} · {}",
        report.started_at,
        report.machine.describe_short()
    )
}

fn series_values(
    report: &CompareReport,
    f: impl Fn(&super::report::Row) -> Option<f64>,
) -> Vec<Vec<Option<f64>>> {
    report
        .targets
        .iter()
        .map(|t| {
            report
                .matrix
                .iter()
                .map(|cell| {
                    let test = cell.to_string();
                    report
                        .rows
                        .iter()
                        .find(|r| r.target == t.name && r.test == test)
                        .and_then(&f)
                })
                .collect()
        })
        .collect()
}

/// The requests-per-second chart as SVG, with each bar's limit when known.
pub fn rps_svg(report: &CompareReport) -> String {
    let limits = series_values(report, |r| r.limit_rps);
    let has_limits = limits.iter().flatten().any(Option::is_some);
    Chart {
        title: "Requests per second (higher is better)".into(),
        subtitle: subtitle(report, "hey's RPS"),
        y_title: "requests / s".into(),
        groups: report.matrix.iter().map(ToString::to_string).collect(),
        series: report.targets.iter().map(|t| t.name.clone()).collect(),
        values: series_values(report, |r| Some(r.requests_per_sec)),
        limits: has_limits.then_some(limits),
        label_decimals: 0,
    }
    .render()
}

/// The p95 latency chart as SVG, in milliseconds.
pub fn p95_svg(report: &CompareReport) -> String {
    Chart {
        title: "P95 latency (lower is better)".into(),
        subtitle: subtitle(report, "95th percentile"),
        y_title: "p95 latency (ms)".into(),
        groups: report.matrix.iter().map(ToString::to_string).collect(),
        series: report.targets.iter().map(|t| t.name.clone()).collect(),
        values: series_values(report, |r| r.p95_secs.map(|s| s * 1000.0)),
        limits: None,
        label_decimals: 1,
    }
    .render()
}

/// Renders `svg` to PNG at its own size ([`WIDTH`] × [`HEIGHT`] for these charts).
pub fn svg_to_png(chart: &'static str, svg: &str, fonts: &Fonts) -> Result<Vec<u8>, CompareError> {
    let fail = |reason: String| CompareError::Chart { chart, reason };
    let opt = usvg::Options {
        fontdb: fonts.db.clone(),
        font_family: fonts.family.clone().unwrap_or_else(|| "sans-serif".into()),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| fail(e.to_string()))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| {
        fail(format!(
            "cannot make a {}×{} image",
            size.width(),
            size.height()
        ))
    })?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(1080.0, 5.0), 250.0);
        assert_eq!(nice_step(108.0, 5.0), 25.0);
        assert_eq!(nice_step(9.0, 5.0), 2.0);
        assert_eq!(nice_step(0.5, 5.0), 0.1);
        assert_eq!(tick_label(250.0, 250.0), "250");
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(0.75, 0.25), "0.75");
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
    }

    #[test]
    fn chart_without_data_still_renders() {
        let c = Chart {
            title: "t".into(),
            subtitle: "s".into(),
            y_title: "y".into(),
            groups: vec!["1/1".into()],
            series: vec!["a".into()],
            values: vec![vec![None]],
            limits: None,
            label_decimals: 0,
        };
        let svg = c.render();
        assert!(svg.contains(">n/a<"));
        let png = svg_to_png("test", &svg, &Fonts::none()).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
