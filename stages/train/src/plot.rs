//! Small line plots written as PNG: axes, a light grid, one polyline per series and numeric
//! labels at the ends of each axis in a built-in 3×5 pixel font. Titles and legends belong in
//! the report that shows the plot, because the font has digits only.

use std::io::BufWriter;
use std::path::Path;

use crate::error::{Result, TrainError};

const WIDTH: usize = 640;
const HEIGHT: usize = 400;
const LEFT: usize = 60;
const RIGHT: usize = 20;
const TOP: usize = 20;
const BOTTOM: usize = 40;
/// Series colours, in order: blue, orange, green, red, purple, brown.
const COLORS: [[u8; 3]; 6] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
];

/// One line of a plot.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Draws `series` into a 640×400 PNG at `path`; the n-th series gets the n-th colour of
/// `series_color`. Non-finite points are skipped.
pub fn line_plot(path: &Path, series: &[Series]) -> Result<()> {
    let mut canvas = Canvas::new();
    let points = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x_min, mut x_max, mut y_min, mut y_max) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in points() {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    if !x_min.is_finite() {
        (x_min, x_max, y_min, y_max) = (0.0, 1.0, 0.0, 1.0);
    }
    if x_max == x_min {
        x_max = x_min + 1.0;
    }
    if y_max == y_min {
        y_max = y_min + 1.0;
    }
    let plot_w = (WIDTH - LEFT - RIGHT) as f64;
    let plot_h = (HEIGHT - TOP - BOTTOM) as f64;
    let to_pixel = |x: f64, y: f64| -> (f64, f64) {
        (
            LEFT as f64 + (x - x_min) / (x_max - x_min) * plot_w,
            TOP as f64 + (1.0 - (y - y_min) / (y_max - y_min)) * plot_h,
        )
    };

    for i in 0..=4 {
        let gy = TOP as f64 + plot_h * i as f64 / 4.0;
        let gx = LEFT as f64 + plot_w * i as f64 / 4.0;
        canvas.line(
            (LEFT as f64, gy),
            ((WIDTH - RIGHT) as f64, gy),
            [225, 225, 225],
        );
        canvas.line(
            (gx, TOP as f64),
            (gx, (HEIGHT - BOTTOM) as f64),
            [225, 225, 225],
        );
    }
    let origin = (LEFT as f64, (HEIGHT - BOTTOM) as f64);
    canvas.line(origin, ((WIDTH - RIGHT) as f64, origin.1), [0, 0, 0]);
    canvas.line(origin, (LEFT as f64, TOP as f64), [0, 0, 0]);

    for (index, s) in series.iter().enumerate() {
        let color = series_color(index);
        let mut previous: Option<(f64, f64)> = None;
        for &(x, y) in s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
        {
            let p = to_pixel(x, y);
            match previous {
                Some(q) => canvas.line(q, p, color),
                None => canvas.dot(p, color),
            }
            previous = Some(p);
        }
    }

    canvas.text(2, TOP, &label(y_max));
    canvas.text(2, HEIGHT - BOTTOM - 5, &label(y_min));
    canvas.text(LEFT, HEIGHT - BOTTOM + 8, &label(x_min));
    let x_label = label(x_max);
    canvas.text(
        WIDTH - RIGHT - x_label.len() * 8,
        HEIGHT - BOTTOM + 8,
        &x_label,
    );
    canvas.write(path)
}

/// Returns the RGB colour of the n-th series.
pub fn series_color(index: usize) -> [u8; 3] {
    COLORS[index % COLORS.len()]
}

/// Returns the hex code of the n-th series colour, for legends in reports.
pub fn series_color_hex(index: usize) -> String {
    let [r, g, b] = series_color(index);
    format!("#{r:02x}{g:02x}{b:02x}")
}

fn label(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-2..1e5).contains(&magnitude) {
        format!("{value:.2e}")
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// An RGB raster.
struct Canvas {
    pixels: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Self {
            pixels: vec![255; WIDTH * HEIGHT * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x < 0 || y < 0 || x >= WIDTH as i64 || y >= HEIGHT as i64 {
            return;
        }
        let offset = (y as usize * WIDTH + x as usize) * 3;
        self.pixels[offset..offset + 3].copy_from_slice(&color);
    }

    fn dot(&mut self, (x, y): (f64, f64), color: [u8; 3]) {
        for dy in -1..=1 {
            for dx in -1..=1 {
                self.set(x.round() as i64 + dx, y.round() as i64 + dy, color);
            }
        }
    }

    /// Draws a two-pixel-wide line by stepping along its longer axis.
    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), color: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
        for i in 0..=steps {
            let t = i as f64 / steps as f64;
            let x = (x0 + (x1 - x0) * t).round() as i64;
            let y = (y0 + (y1 - y0) * t).round() as i64;
            self.set(x, y, color);
            self.set(x, y + 1, color);
        }
    }

    /// Writes `text` at twice the glyph size; characters without a glyph are left blank.
    fn text(&mut self, x: usize, y: usize, text: &str) {
        for (i, ch) in text.chars().enumerate() {
            let Some(rows) = glyph(ch) else {
                continue;
            };
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            let px = (x + i * 8 + col * 2 + dx) as i64;
                            let py = (y + row * 2 + dy) as i64;
                            self.set(px, py, [0, 0, 0]);
                        }
                    }
                }
            }
        }
    }

    fn write(&self, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path).map_err(TrainError::io("create", path))?;
        let mut encoder = png::Encoder::new(BufWriter::new(file), WIDTH as u32, HEIGHT as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let png_error = |e: png::EncodingError| TrainError::Png {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut writer = encoder.write_header().map_err(png_error)?;
        writer.write_image_data(&self.pixels).map_err(png_error)?;
        writer.finish().map_err(png_error)
    }
}

/// Returns the five 3-bit rows of a digit, sign, point or exponent glyph.
fn glyph(ch: char) -> Option<[u8; 5]> {
    Some(match ch {
        '0' => [0b111, 0b101, 0b101, 0b101, 0b111],
        '1' => [0b010, 0b110, 0b010, 0b010, 0b111],
        '2' => [0b111, 0b001, 0b111, 0b100, 0b111],
        '3' => [0b111, 0b001, 0b111, 0b001, 0b111],
        '4' => [0b101, 0b101, 0b111, 0b001, 0b001],
        '5' => [0b111, 0b100, 0b111, 0b001, 0b111],
        '6' => [0b111, 0b100, 0b111, 0b101, 0b111],
        '7' => [0b111, 0b001, 0b010, 0b010, 0b010],
        '8' => [0b111, 0b101, 0b111, 0b101, 0b111],
        '9' => [0b111, 0b101, 0b111, 0b001, 0b111],
        '.' => [0b000, 0b000, 0b000, 0b000, 0b010],
        '-' => [0b000, 0b000, 0b111, 0b000, 0b000],
        '+' => [0b000, 0b010, 0b111, 0b010, 0b000],
        'e' => [0b000, 0b111, 0b111, 0b100, 0b111],
        _ => return None,
    })
}
