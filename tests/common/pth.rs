//! Writing `.pth` checkpoints exactly as `torch.save` lays them out, for converter and CLI tests.

use std::io::Write;
use std::path::Path;

/// A minimal pickle writer for what torch.save emits.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) {
        self.0.push(b);
    }
    fn str(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }
    fn int(&mut self, v: usize) {
        self.op(b'J'); // BININT
        self.0.extend((v as i32).to_le_bytes());
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
    }
    fn tuple_of(&mut self, items: &[usize]) {
        self.op(b'(');
        for &i in items {
            self.int(i);
        }
        self.op(b't');
    }
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')'); // EMPTY_TUPLE
        self.op(b'R'); // REDUCE
    }
    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, storage `key` of `numel` floats.
    fn tensor(&mut self, key: usize, shape: &[usize], storage_type: &str) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        self.op(b'(');
        self.str("storage");
        self.global("torch", storage_type);
        self.str(&key.to_string());
        self.str("cpu");
        self.int(shape.iter().product());
        self.op(b't');
        self.op(b'Q'); // BINPERSID
        self.int(0);
        self.tuple_of(shape);
        let strides: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        self.tuple_of(&strides);
        self.op(0x89); // NEWFALSE
        self.ordered_dict();
        self.op(b't');
        self.op(b'R');
    }
}

/// Writes `{'meta': {'epoch': 24, 'CLASSES': (COCO's 80 names)}, 'state_dict': OrderedDict(...)}` in torch.save's
/// layout; `f16` stores every tensor as HalfStorage. (tests/fixtures/checkpoints holds files the real torch.save and
/// mmengine wrote; this writer makes checkpoints of any tensors on the fly.)
pub fn write_pth(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], f16: bool) {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    p.op(b'}'); // EMPTY_DICT
    p.op(b'(');
    p.str("meta");
    p.op(b'}');
    p.op(b'(');
    p.str("epoch");
    p.int(24);
    p.str("CLASSES");
    p.op(b'(');
    for name in mask_rcnn_burn::ModelConfig::named("r50-2x").unwrap().dataset.classes {
        p.str(&name);
    }
    p.op(b't');
    p.op(b'u'); // SETITEMS
    p.str("state_dict");
    p.ordered_dict();
    p.op(b'(');
    for (i, (key, shape, _)) in tensors.iter().enumerate() {
        p.str(key);
        p.tensor(i, shape, if f16 { "HalfStorage" } else { "FloatStorage" });
    }
    p.op(b'u');
    p.op(b'u');
    p.op(b'.'); // STOP
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored).with_alignment(64);
    zip.start_file("archive/data.pkl", opts).unwrap();
    zip.write_all(&p.0).unwrap();
    zip.start_file("archive/byteorder", opts).unwrap();
    zip.write_all(b"little").unwrap();
    for (i, (_, _, data)) in tensors.iter().enumerate() {
        zip.start_file(format!("archive/data/{i}"), opts).unwrap();
        let bytes: Vec<u8> = if f16 {
            data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()
        } else {
            data.iter().flat_map(|v| v.to_le_bytes()).collect()
        };
        zip.write_all(&bytes).unwrap();
    }
    zip.start_file("archive/version", opts).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap();
}

