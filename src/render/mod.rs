//! An annotated picture of the detections: each mask blended in its class colour, its box, and `class score`.

mod png;

use crate::image::BgrImage;
use crate::output::Detections;

/// A distinct, stable colour per class (B, G, R), from the golden-ratio hue walk.
pub fn class_color(label: usize) -> [u8; 3] {
    let h = (label as f32 * 0.618_034).fract() * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let c = |v: f32| (55.0 + 200.0 * v) as u8;
    [c(b), c(g), c(r)]
}

/// Draws `dets` over `img` (same size as the detections' image).
pub fn annotate(img: &BgrImage, dets: &Detections) -> BgrImage {
    let mut out = img.clone();
    draw(&mut Canvas { data: &mut out.data, width: img.width, height: img.height, y0: 0 }, dets);
    out
}

/// Writes `img` with `dets` drawn over it as PNG, as `save_png(&annotate(img, dets), path)` does, but drawn strip
/// by strip as the encoder's threads filter and deflate them: no copy of the whole picture.
pub fn save_annotated_png(img: &BgrImage, dets: &Detections, path: &std::path::Path) -> std::io::Result<()> {
    let draw_rows = strip_drawer(img, dets);
    crate::fs::write_atomic_with(path, |w| png::write_bgr(img, Some(&draw_rows), w))
}

/// Draws `dets` on a strip of `img`'s rows (`y0` is the strip's first row), as the PNG encoder hands them over.
fn strip_drawer<'a>(img: &BgrImage, dets: &'a Detections) -> impl Fn(usize, &mut [u8]) + Sync + 'a {
    let (width, height) = (img.width, img.height);
    move |y0, rows| draw(&mut Canvas { data: rows, width, height, y0 }, dets)
}

/// Rows `y0..` of a `width x height` BGR picture being drawn on (the whole picture, or one strip of it).
struct Canvas<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
    y0: usize,
}

impl Canvas<'_> {
    /// The rows of the canvas within `y0..y1`, as a range of picture rows.
    fn rows(&self, y0: usize, y1: usize) -> std::ops::Range<usize> {
        let end = self.y0 + self.data.len() / (self.width * 3).max(1);
        y0.max(self.y0)..y1.min(end).min(self.height)
    }

    /// Pixels `x0..x1` of picture row `y` (in the canvas).
    fn row(&mut self, y: usize, x0: usize, x1: usize) -> &mut [u8] {
        let start = ((y - self.y0) * self.width + x0) * 3;
        &mut self.data[start..start + (x1 - x0) * 3]
    }

    fn put(&mut self, x: usize, y: usize, color: [u8; 3]) {
        if x < self.width && !self.rows(y, y + 1).is_empty() {
            self.row(y, x, x + 1).copy_from_slice(&color);
        }
    }
}

/// Masks first, lowest score first so the best detections end on top; then boxes and labels.
fn draw(canvas: &mut Canvas, dets: &Detections) {
    let w = canvas.width;
    for d in dets.items.iter().rev() {
        let color = class_color(d.label);
        let m = &d.mask;
        let (mw, x1) = (m.x1 - m.x0, m.x1.min(w));
        if m.x0 >= x1 {
            continue;
        }
        // Row slices of the window against row slices of the picture: no per-pixel bounds arithmetic.
        for y in canvas.rows(m.y0, m.y1) {
            let row = &m.window[(y - m.y0) * mw..][..x1 - m.x0];
            for (px, _) in canvas.row(y, m.x0, x1).chunks_exact_mut(3).zip(row).filter(|(_, on)| **on != 0) {
                for c in 0..3 {
                    px[c] = ((px[c] as u16 + color[c] as u16) / 2) as u8;
                }
            }
        }
    }
    let h = canvas.height;
    for d in dets.items.iter().rev() {
        let color = class_color(d.label);
        let [x0, y0, x1, y1] = d.bbox.map(|v| v.max(0.0) as usize);
        draw_rect(canvas, x0, y0, x1.min(w.saturating_sub(1)), y1.min(h.saturating_sub(1)), color);
        let text = format!("{} {:.2}", d.class_name, d.score);
        let ty = if y0 >= 10 { y0 - 10 } else { y0 + 1 };
        draw_text(canvas, x0, ty, &text, color);
    }
}

/// A 2-pixel rectangle outline.
fn draw_rect(canvas: &mut Canvas, x0: usize, y0: usize, x1: usize, y1: usize, color: [u8; 3]) {
    if canvas.rows(y0, y1 + 1).is_empty() {
        return;
    }
    for t in 0..2 {
        for x in x0..=x1 {
            canvas.put(x, y0 + t, color);
            canvas.put(x, y1.saturating_sub(t), color);
        }
        for y in canvas.rows(y0, y1 + 1) {
            canvas.put(x0 + t, y, color);
            canvas.put(x1.saturating_sub(t), y, color);
        }
    }
}

/// 8x8 bitmap text (font8x8) in black on a box of `color`, 1 pixel of margin.
fn draw_text(canvas: &mut Canvas, x: usize, y: usize, text: &str, color: [u8; 3]) {
    if canvas.rows(y, y + 10).is_empty() {
        return;
    }
    let width = text.chars().count() * 8 + 2;
    for dy in 0..10 {
        for dx in 0..width {
            canvas.put(x + dx, y + dy, color);
        }
    }
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    canvas.put(x + 1 + i * 8 + col, y + 1 + row, [0, 0, 0]);
                }
            }
        }
    }
}

/// Writes a BGR image as PNG (atomically: a temporary file renamed into place). Strips of rows are filtered and
/// deflated on all cores (`png::write_bgr`).
pub fn save_png(img: &BgrImage, path: &std::path::Path) -> std::io::Result<()> {
    crate::fs::write_atomic_with(path, |w| png::write_bgr(img, None, w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Detection;
    use crate::structures::Mask;

    #[test]
    fn masked_pixels_are_blended_and_the_rest_kept() {
        let (w, h) = (100, 100);
        let img = BgrImage::from_bgr(w, h, (0..w * h * 3).map(|i| (i % 200) as u8).collect()).unwrap();
        // A 20x20 window with one set pixel, (35, 55), inside the box and below its label.
        let mut window = vec![0u8; 20 * 20];
        window[(55 - 50) * 20 + (35 - 30)] = 1;
        let mask = Mask { image_width: w, image_height: h, x0: 30, y0: 50, x1: 50, y1: 70, window };
        let det = Detection { bbox: [20.0, 40.0, 80.0, 90.0], score: 0.9, label: 3, class_name: "cup".into(), mask };
        let out = annotate(&img, &Detections { image_width: w, image_height: h, items: vec![det] });
        let color = class_color(3);
        let px = |im: &BgrImage, x: usize, y: usize| im.data[(y * w + x) * 3..][..3].to_vec();
        let blended: Vec<u8> = px(&img, 35, 55).iter().zip(color).map(|(&p, c)| ((p as u16 + c as u16) / 2) as u8).collect();
        assert_eq!(px(&out, 35, 55), blended);
        assert_eq!(px(&out, 36, 55), px(&img, 36, 55), "an unset pixel of the window");
        assert_eq!(px(&out, 5, 95), px(&img, 5, 95), "outside every box");
        assert_eq!(px(&out, 20, 60), color.to_vec(), "the box outline");
    }

    #[test]
    fn drawn_by_strips_equals_drawn_whole() {
        // 7-row strips against boxes, masks and labels that cross strip edges and the picture's edges.
        let (w, h) = (61, 90);
        let img = BgrImage::from_bgr(w, h, (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect()).unwrap();
        let items = (0..12usize)
            .map(|k| {
                let (x0, y0) = (k * 5 % 50, k * 13 % 85);
                let (x1, y1) = ((x0 + 9 + k).min(w), (y0 + 11 + k).min(h));
                let window = (0..(x1 - x0) * (y1 - y0)).map(|i| ((i + k) % 3 == 0) as u8).collect();
                let mask = Mask { image_width: w, image_height: h, x0, y0, x1, y1, window };
                let bbox = [x0 as f32, y0 as f32, x1 as f32 + 3.0, y1 as f32 + 2.0];
                Detection { bbox, score: 0.5 + k as f32 / 30.0, label: k, class_name: format!("c{k}"), mask }
            })
            .collect();
        let dets = Detections { image_width: w, image_height: h, items };
        let draw_rows = strip_drawer(&img, &dets);
        let mut encoded = Vec::new();
        png::write_bgr_in_strips(&img, Some(&draw_rows), 7 * w * 3, &mut encoded).unwrap();
        let mut reader = ::png::Decoder::new(std::io::Cursor::new(encoded)).read_info().unwrap();
        let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut rgb).unwrap();
        assert_eq!(rgb, annotate(&img, &dets).to_rgb());
    }
}
