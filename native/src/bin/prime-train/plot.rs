//! A line chart as SVG text, for `prime-train sweep --svg`: one line per series over a
//! logarithmic x axis (network calls) and a linear y axis (a quality measure).

use std::fmt::Write;

/// One line: its name and its (x, y) points.
pub struct Series {
    /// The legend's label.
    pub name: String,
    /// Points, x > 0.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 52.0;
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#7f7f7f"];

/// The chart: x on a log₂ scale with a tick at every power of two in range, y linear with about
/// six ticks; a legend on the right.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter()).filter(|p| p.0 > 0.0 && p.1.is_finite());
    let (x0, x1) = points().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0.log2()), b.max(p.0.log2())));
    let (y0, y1) = points().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x0, x1) = if x0 < x1 { (x0.floor(), x1.ceil()) } else { (x0 - 1.0, x0 + 1.0) };
    let step = nice_step((y1 - y0).max(1e-9) / 5.0);
    let (y0, y1) =
        if y0 < y1 { ((y0 / step).floor() * step, (y1 / step).ceil() * step) } else { (y0 - step, y0 + step) };
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x.log2() - x0) / (x1 - x0) * plot_w;
    let py = |y: f64| TOP + (y1 - y) / (y1 - y0) * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(svg, r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = write!(svg, r#"<text x="{LEFT}" y="22" font-size="14">{}</text>"#, escape(title));
    let mut k = x0;
    while k <= x1 + 1e-9 {
        let x = LEFT + (k - x0) / (x1 - x0) * plot_w;
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            2f64.powf(k).round()
        );
        k += 1.0;
    }
    let mut y = y0;
    while y <= y1 + step * 1e-6 {
        let at = py(y);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{at:.1}" x2="{:.1}" y2="{at:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            at + 4.0,
            format_tick(y, step)
        );
        y += step;
    }
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w:.1}" height="{plot_h:.1}" fill="none" stroke="#444"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 12.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (n, s) in series.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let mut line: Vec<&(f64, f64)> = s.points.iter().filter(|p| p.0 > 0.0 && p.1.is_finite()).collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let path: Vec<String> = line.iter().map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1))).collect();
        let _ =
            write!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#, path.join(" "));
        for p in &line {
            let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, px(p.0), py(p.1));
        }
        let ly = TOP + 10.0 + 20.0 * n as f64;
        let lx = LEFT + plot_w + 16.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|&s| s >= raw).unwrap_or(10.0 * power)
}

/// A y tick with as many decimals as the step needs.
fn format_tick(y: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{y:.decimals$}")
}

/// Text safe inside SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_line_per_series_within_the_frame() {
        let series = vec![
            Series { name: "ancestral".into(), points: vec![(17.0, 93.7), (165.1, 95.0), (33.0, 95.5)] },
            Series { name: "confidence:0.9 <&>".into(), points: vec![(16.0, 94.6), (252.4, 97.0)] },
        ];
        let svg = line_chart("NFE & quality", "network calls", "dictionary words (%)", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 5);
        assert!(svg.contains("confidence:0.9 &lt;&amp;&gt;") && svg.contains("NFE &amp; quality"));
        // The first line's points in NFE order, left to right, inside the plot.
        let first = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        let xs: Vec<f64> = first.split(' ').map(|p| p.split(',').next().unwrap().parse().unwrap()).collect();
        assert_eq!(xs.len(), 3);
        assert!(xs.windows(2).all(|w| w[0] < w[1]) && xs[0] >= LEFT && xs[2] <= WIDTH - RIGHT, "{xs:?}");
        // Ticks at the powers of two in range, 16 to 256.
        for tick in [">16<", ">32<", ">64<", ">256<"] {
            assert!(svg.contains(tick), "{tick}");
        }
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(0.03), 0.05);
        assert_eq!(format_tick(95.5, 0.5), "95.5");
        assert_eq!(format_tick(94.0, 2.0), "94");
    }
}
