//! Hostile and odd files through the CLI: images, safetensors, `.pth` checkpoints and TOML configs that are
//! truncated, corrupt, forged to claim huge sizes, or merely unusual. Each runs in its own process under a 2 GiB
//! address-space limit (`ulimit -v`), and must end as a typed one-line error (exit 1) or a valid result (exit 0):
//! never a panic (101), an abort or a kill by the limit (a signal). The test prints the largest peak RSS of
//! those processes.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The address-space limit each run gets, in KiB (2 GiB).
const LIMIT_KIB: u64 = 2 << 20;

fn scratch(name: &str) -> PathBuf {
    scratch_file("malformed", name)
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// What a run must end in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exit 1 and one line on stderr holding this text.
    Error(&'static str),
    /// Exit 0.
    Valid,
    /// Exit 0, or exit 1 with a one-line error: either is right for this input.
    ErrorOrValid,
    /// Exit 2: bad arguments.
    Usage,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

struct Case {
    name: String,
    args: Vec<String>,
    expect: Expect,
}

/// Runs the CLI under the address-space limit, with its own peak RSS (bytes, its VmHWM as it prints it at exit:
/// a child's maxrss as wait4 reports it would include this test process's peak, which fork and exec carry over).
/// glibc's per-thread malloc arenas reserve 64 MiB of address space each, so they are capped, as a server under
/// such a limit would cap them.
fn run_limited(args: &[String]) -> (std::process::Output, u64) {
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!("ulimit -v {LIMIT_KIB} && exec \"$0\" \"$@\"")).arg(infer_bin()).args(args);
    cmd.env("MASK_RCNN_BURN_CACHE", scratch("cache")).env("MALLOC_ARENA_MAX", "2").env("RAYON_NUM_THREADS", "2");
    let out = cmd.env("MASK_RCNN_BURN_PEAK_RSS", "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let kib = stdout.lines().find_map(|l| l.strip_prefix("peak RSS: ")?.strip_suffix(" kB")?.parse::<u64>().ok());
    // A run that ends without printing it (killed, or before main) counts as using everything.
    (out, kib.map_or(u64::MAX, |k| k * 1024))
}

/// How many hostile files and argument sets the test runs (the README says so).
const CASES: usize = 74;

/// The bound on every run's peak RSS, well below the address-space limit so that a run using more memory than it
/// should fails here rather than hiding under the limit. Measured: 351 MiB, a valid run of the model on a PNG
/// (errors stay under 45 MiB); the bound leaves a margin of ~45%.
const MAX_RSS: u64 = 512 << 20;


// ---- images -------------------------------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend((data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend(kind);
    out.extend(data);
    let crc = crc32(&out[start..]);
    out.extend(crc.to_be_bytes());
}

/// A PNG whose header says `width x height` (8-bit, colour type `color`), with `idat` as its data.
fn png_with_header(width: u32, height: u32, color: u8, idat: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, color, 0, 0, 0]);
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", idat);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn encode_png(img: image::DynamicImage) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

/// Replaces the size in a JPEG's first SOF marker.
fn jpeg_with_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let mut out = jpeg.to_vec();
    let sof = (2..out.len() - 9).find(|&i| out[i] == 0xFF && matches!(out[i + 1], 0xC0 | 0xC1 | 0xC2)).expect("SOF marker");
    out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    out
}

fn image_cases(weights: &Path, config: &Path) -> Vec<Case> {
    let png = std::fs::read(fixtures().join("images/hopper_640x480.png")).unwrap();
    let jpeg = std::fs::read(fixtures().join("images/coffee_600x400_q85.jpg")).unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let zlib_zeros = |n: usize| -> Vec<u8> {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        let chunk = vec![0u8; n.min(1 << 20)];
        (0..n.div_ceil(chunk.len())).for_each(|_| z.write_all(&chunk).unwrap());
        z.finish().unwrap()
    };
    let mut bomb_text = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut bomb_text, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    // A zTXt chunk inflating to 1 GiB of zeros (1 MB in the file), then a valid 1x1 gray pixel.
    let mut ztxt = b"Comment\0\0".to_vec();
    ztxt.extend(zlib_zeros(1 << 30));
    png_chunk(&mut bomb_text, b"zTXt", &ztxt);
    png_chunk(&mut bomb_text, b"IDAT", &zlib_zeros(2));
    png_chunk(&mut bomb_text, b"IEND", &[]);

    let mut flipped = png.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xFF;
    let mut jpeg_flipped = jpeg.clone();
    for i in (jpeg.len() / 3..jpeg.len() / 3 + 64).step_by(4) {
        jpeg_flipped[i] = 0xFF;
    }

    let too_large = "over the limit";
    let mut images: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty.png", vec![], Expect::Error("is empty")),
        ("text.png", b"hello, this is text, not pixels".to_vec(), Expect::Error("cannot be decoded")),
        ("noise.jpg", noise(4096), Expect::Error("cannot be decoded")),
        ("noise_with_png_magic.png", [&png[..8], &noise(4096)[..]].concat(), Expect::Error("cannot be decoded")),
        ("noise_with_jpeg_magic.jpg", [&[0xFF, 0xD8, 0xFF][..], &noise(4096)[..]].concat(), Expect::Error("image")),
        ("png_100000x100000.png", png_with_header(100_000, 100_000, 2, &zlib_zeros(16)), Expect::Error(too_large)),
        ("png_1x300000000.png", png_with_header(1, 300_000_000, 0, &zlib_zeros(16)), Expect::Error(too_large)),
        ("png_0x10.png", png_with_header(0, 10, 2, &zlib_zeros(16)), Expect::Error("image")),
        ("png_header_only.png", png[..33].to_vec(), Expect::Error("cannot be decoded")),
        ("png_magic_only.png", png[..8].to_vec(), Expect::Error("cannot be decoded")),
        ("png_cut_100.png", png[..100].to_vec(), Expect::Error("cannot be decoded")),
        ("png_cut_half.png", png[..png.len() / 2].to_vec(), Expect::Error("cannot be decoded")),
        ("png_cut_last_byte.png", png[..png.len() - 1].to_vec(), Expect::ErrorOrValid),
        ("png_flipped_byte.png", flipped, Expect::ErrorOrValid),
        ("png_ztxt_bomb.png", bomb_text, Expect::ErrorOrValid),
        ("png_pixels_missing.png", png_with_header(64, 64, 2, &zlib_zeros(10)), Expect::Error("cannot be decoded")),
        ("jpeg_soi_only.jpg", jpeg[..2].to_vec(), Expect::Error("image")),
        ("jpeg_header_cut.jpg", jpeg[..200].to_vec(), Expect::Error("image")),
        ("jpeg_cut_half.jpg", jpeg[..jpeg.len() / 2].to_vec(), Expect::Error("truncated")),
        ("jpeg_no_eoi.jpg", jpeg[..jpeg.len() - 2].to_vec(), Expect::Error("truncated")),
        ("jpeg_65500x65500.jpg", jpeg_with_size(&jpeg, 65_500, 65_500), Expect::Error(too_large)),
        ("jpeg_0x400.jpg", jpeg_with_size(&jpeg, 0, 400), Expect::Error("image")),
        ("jpeg_flipped_scan.jpg", jpeg_flipped, Expect::ErrorOrValid),
        ("gif.png", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(), Expect::Error("cannot be decoded")),
        ("bmp.png", [&b"BM"[..], &noise(64)[..]].concat(), Expect::Error("cannot be decoded")),
        // Odd but valid: each runs the model.
        ("png_1x1.png", encode_png(image::DynamicImage::new_rgb8(1, 1)), Expect::Valid),
        // Resized to 128 long side, its width rounds to 0 (mmdetection's cv2.resize raises there).
        ("png_1x3000.png", encode_png(image::DynamicImage::new_luma8(1, 3000)), Expect::ErrorOrValid),
        ("png_3000x2_rgba16.png", encode_png(image::DynamicImage::new_rgba16(3000, 2)), Expect::Valid),
    ];
    let mut cases: Vec<Case> = images
        .drain(..)
        .map(|(name, bytes, expect)| {
            let path = file(name, &bytes);
            let args = [path.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--model", config.to_str().unwrap(), "--device", "flex"];
            Case { name: name.to_string(), args: strings(&args), expect }
        })
        .collect();
    // The size cap is the user's: a 640x480 photo is over 0.2 megapixels.
    let photo = fixtures().join("images/hopper_640x480.png");
    cases.push(Case {
        name: "--max-megapixels 0.2".into(),
        args: strings(&[photo.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--max-megapixels", "0.2"]),
        expect: Expect::Error(too_large),
    });
    cases
}

// ---- weights -----------------------------------------------------------------------------------------------

fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// The synthetic R-50 weights with one value of `key` replaced by NaN.
fn with_nan(weights: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(weights).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data = 8 + n;
    bytes[data..data + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    bytes
}

/// A `.pth` zip whose pickle is `payload`, with `entries` beside it.
fn pth_zip(payload: &[u8], entries: &[(&str, Vec<u8>, bool)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(payload).unwrap();
    for (name, data, deflate) in entries {
        zip.start_file(format!("archive/{name}"), if *deflate { deflated } else { stored }).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file("archive/version", stored).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap().into_inner()
}

/// Pickle protocol 2: `{'state_dict': {'w': _rebuild_tensor_v2(storage '0' of `numel` floats, 0, shape, stride)}}`.
fn pickle_tensor(shape: &[u32], numel: u32) -> Vec<u8> {
    let mut p = vec![0x80, 2, b'}', b'('];
    let s = |p: &mut Vec<u8>, t: &str| {
        p.push(b'X');
        p.extend((t.len() as u32).to_le_bytes());
        p.extend(t.as_bytes());
    };
    let int = |p: &mut Vec<u8>, v: u32| {
        p.push(b'J');
        p.extend(v.to_le_bytes());
    };
    s(&mut p, "state_dict");
    p.extend(b"}(");
    s(&mut p, "w");
    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
    s(&mut p, "storage");
    p.extend(b"ctorch\nFloatStorage\n");
    s(&mut p, "0");
    s(&mut p, "cpu");
    int(&mut p, numel);
    p.extend(b"tQ");
    int(&mut p, 0);
    p.push(b'(');
    shape.iter().for_each(|&d| int(&mut p, d));
    p.push(b't');
    p.push(b'(');
    let strides: Vec<u32> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
    strides.iter().for_each(|&d| int(&mut p, d));
    p.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
    p.extend(b"uu.");
    p
}

fn weights_cases(weights: &Path, config: &Path, image: &Path) -> Vec<Case> {
    let synth = std::fs::read(weights).unwrap();
    let evil_pickle = [&b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00trueR."[..]].concat();
    let mut huge = std::fs::File::create(scratch("sparse_4gib.safetensors")).unwrap();
    huge.write_all(&synth[..4096]).unwrap();
    huge.set_len(4 << 30).unwrap(); // sparse: 4 GiB claimed, nothing written
    drop(huge);
    let files: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty.safetensors", vec![], Expect::Error("not a readable safetensors")),
        ("cut_8.safetensors", synth[..8].to_vec(), Expect::Error("not a readable safetensors")),
        ("cut_header.safetensors", synth[..1000].to_vec(), Expect::Error("not a readable safetensors")),
        ("cut_half.safetensors", synth[..synth.len() / 2].to_vec(), Expect::Error("not a readable safetensors")),
        ("header_len_max.safetensors", [&u64::MAX.to_le_bytes()[..], b"{}"].concat(), Expect::Error("not a readable safetensors")),
        ("header_len_past_end.safetensors", [&1_000_000u64.to_le_bytes()[..], b"{}"].concat(), Expect::Error("not a readable safetensors")),
        ("header_not_json.safetensors", safetensors("{not json at all", &[]), Expect::Error("not a readable safetensors")),
        ("offsets_past_end.safetensors", safetensors(r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,1600000]}}"#, &[0; 16]), Expect::Error("not a readable safetensors")),
        ("shape_overflow.safetensors", safetensors(r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#, &[0; 16]), Expect::Error("not a readable safetensors")),
        ("unknown_i64_tensor.safetensors", safetensors(r#"{"a":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#, &[0; 16]), Expect::Error("the model")),
        ("nan_value.safetensors", with_nan(weights), Expect::Error("non-finite")),
        ("not_weights.pth", b"PK\x03\x04 this is not a zip archive at all".to_vec(), Expect::Error("cannot be converted")),
        ("cut_zip.pth", pth_zip(&pickle_tensor(&[2, 2], 4), &[("data/0", vec![0; 16], false)])[..100].to_vec(), Expect::Error("cannot be converted")),
        ("os_system_zip.pth", pth_zip(&evil_pickle, &[]), Expect::Error("cannot be converted")),
        ("os_system_legacy.pth", evil_pickle.clone(), Expect::Error("cannot be converted")),
        ("storage_too_small.pth", pth_zip(&pickle_tensor(&[1000, 1000], 4), &[("data/0", vec![0; 16], false)]), Expect::Error("cannot be converted")),
        ("storage_missing.pth", pth_zip(&pickle_tensor(&[2, 2], 4), &[]), Expect::Error("the model does not have")),
        ("deflate_bomb.pth", pth_zip(&pickle_tensor(&[8192, 8192], 8192 * 8192), &[("data/0", vec![0; 1 << 28], true)]), Expect::Error("more bytes than the file holds")),
        ("pickle_garbage.pth", pth_zip(b"\x80\x02}(X\x01\x00\x00\x00a\xff\xff\xff", &[]), Expect::Error("cannot be converted")),
        ("right_zip_wrong_keys.pth", pth_zip(&pickle_tensor(&[2, 2], 4), &[("data/0", vec![0; 16], false)]), Expect::Error("the model")),
    ];
    let mut cases: Vec<Case> = files
        .into_iter()
        .map(|(name, bytes, expect)| {
            let path = file(name, &bytes);
            let args = [image.to_str().unwrap(), "--weights", path.to_str().unwrap(), "--model", config.to_str().unwrap(), "--device", "flex"];
            Case { name: name.to_string(), args: strings(&args), expect }
        })
        .collect();
    for (name, device_file, needle) in [("/dev/zero as weights", "/dev/zero", "not a regular file"), ("a folder as weights", "/tmp", "not a regular file")] {
        let args = [image.to_str().unwrap(), "--weights", device_file, "--model", config.to_str().unwrap(), "--device", "flex"];
        cases.push(Case { name: name.into(), args: strings(&args), expect: Expect::Error(needle) });
    }
    let sparse = scratch("sparse_4gib.safetensors");
    cases.push(Case {
        name: "sparse_4gib.safetensors".into(),
        args: strings(&[image.to_str().unwrap(), "--weights", sparse.to_str().unwrap(), "--model", config.to_str().unwrap(), "--device", "flex"]),
        expect: Expect::Error("larger than the model's tensors"),
    });
    cases
}

// ---- configs and arguments ---------------------------------------------------------------------------------

fn config_cases(weights: &Path, image: &Path) -> Vec<Case> {
    let base = "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\n";
    let deep_array = format!("x = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_table = format!("x = {}{}", "{a = ".repeat(50_000), "}".repeat(50_000));
    let self_base = scratch("self_base.toml");
    std::fs::write(&self_base, "base = \"self_base.toml\"\n").unwrap();
    let configs: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("empty.toml", vec![], Expect::Error("not valid TOML for a model config")),
        ("syntax.toml", b"name = \"unterminated\n[test\n".to_vec(), Expect::Error("not valid TOML")),
        ("binary.toml", vec![0xff, 0xfe, 0x00, 0x81, 0x92], Expect::Error("config")),
        ("unknown_field.toml", format!("{base}[test]\nwarp_speed = 9\n").into_bytes(), Expect::Error("warp_speed")),
        ("missing_base.toml", b"base = \"no_such_config.toml\"\n".to_vec(), Expect::Error("neither beside this file nor a built-in")),
        ("scale_huge.toml", format!("{base}[test]\nscale = [100000, 100000]\n").into_bytes(), Expect::Error("test.scale")),
        ("scale_zero.toml", format!("{base}[test]\nscale = [0, 800]\n").into_bytes(), Expect::Error("test.scale")),
        ("scale_negative.toml", format!("{base}[test]\nscale = [-1, 800]\n").into_bytes(), Expect::Error("not valid TOML")),
        ("groups_zero.toml", format!("{base}[model.norm]\nnum_groups = 0\n").into_bytes(), Expect::Error("num_groups")),
        ("depth_152.toml", format!("{base}[model.backbone]\ndepth = 152\n").into_bytes(), Expect::Error("depth")),
        ("nan_std.toml", format!("{base}[model.data]\nstd = [nan, 1.0, 1.0]\n").into_bytes(), Expect::Error("std")),
        ("score_thr_2.toml", format!("{base}[test.rcnn]\nscore_thr = 2.0\n").into_bytes(), Expect::Error("test.rcnn")),
        ("deep_array.toml", deep_array.into_bytes(), Expect::Error("config")),
        ("deep_table.toml", deep_table.into_bytes(), Expect::Error("config")),
        ("two_mib.toml", format!("# {}\n", "x".repeat(2 << 20)).into_bytes(), Expect::Error("larger than")),
        ("two_mib_utf8.toml", format!("# {}\n", "é".repeat(1 << 20)).into_bytes(), Expect::Error("larger than")),
    ];
    let model_case = |name: String, model: &str, expect| Case {
        name,
        args: strings(&[image.to_str().unwrap(), "--weights", weights.to_str().unwrap(), "--model", model, "--device", "flex"]),
        expect,
    };
    let mut cases: Vec<Case> = configs
        .into_iter()
        .map(|(name, bytes, expect)| {
            let path = file(name, &bytes);
            model_case(name.to_string(), path.to_str().unwrap(), expect)
        })
        .collect();
    cases.push(model_case("self_base.toml".into(), self_base.to_str().unwrap(), Expect::Error("chain is longer")));
    cases.push(model_case("/dev/zero as config".into(), "/dev/zero", Expect::Error("unknown model config")));
    let img = image.to_str().unwrap();
    for (name, args) in [
        ("unknown flag", vec![img, "--no-such-flag"]),
        ("--batch 0", vec![img, "--batch", "0"]),
        ("--precision f8", vec![img, "--precision", "f8"]),
        ("--resume without --json", vec![img, "--resume"]),
    ] {
        cases.push(Case { name: name.into(), args: strings(&args), expect: Expect::Usage });
    }
    cases
}

#[test]
fn hostile_files_are_typed_errors_or_valid_results_within_2_gib() {
    let weights = synth_weights_file();
    let config = scratch("r50_128.toml");
    // A small test scale keeps the valid cases' model runs short.
    std::fs::write(&config, "base = \"mask-rcnn_r50_fpn_gn-all_2x_coco.toml\"\nname = \"r50-128\"\n[test]\nscale = [128, 96]\n").unwrap();
    let image = fixtures().join("images/coffee_600x400_q85.jpg");
    let mut cases = image_cases(weights, &config);
    cases.extend(weights_cases(weights, &config, &image));
    cases.extend(config_cases(weights, &image));
    assert_eq!(cases.len(), CASES, "the README counts {CASES} hostile cases");

    let mut failures = Vec::new();
    let mut largest = (0, String::new());
    for case in &cases {
        let (out, peak) = run_limited(&case.args);
        if peak > largest.0 {
            largest = (peak, case.name.clone());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let code = out.status.code();
        let one_line = stderr.lines().count() == 1;
        let ok = match case.expect {
            Expect::Error(needle) => code == Some(1) && one_line && stderr.contains(needle),
            Expect::Valid => code == Some(0),
            Expect::ErrorOrValid => code == Some(0) || (code == Some(1) && one_line),
            Expect::Usage => code == Some(2),
        } && !stderr.contains("panicked");
        let summary = stderr.lines().next().unwrap_or("").chars().take(200).collect::<String>();
        println!("{:<32} exit {:<4} {:>5} MiB  {summary}", case.name, code.map_or("sig".into(), |c| c.to_string()), peak >> 20);
        if !ok {
            failures.push(format!("{} (expected {:?}): exit {:?}\n{stderr}", case.name, case.expect, out.status));
        }
    }
    let (peak, name) = largest;
    println!(
        "{} files and argument sets; largest peak RSS of a run: {:.0} MiB ({name}; address-space limit {} MiB, RSS bound {} MiB)",
        cases.len(),
        peak as f64 / 1048576.0,
        LIMIT_KIB / 1024,
        MAX_RSS >> 20
    );
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
    assert!(peak < MAX_RSS, "peak RSS {peak} bytes ({name})");
}

/// Every crash the fuzz targets found (tests/fixtures/fuzz/TARGET-*), through the same calls as the targets:
/// each is now a typed error. Named by target so new ones only need the file.
#[test]
fn fuzz_crashes_stay_fixed() {
    use mask_rcnn_burn::internals::expected_keys;
    use mask_rcnn_burn::weights::StateDict;
    let config = mask_rcnn_burn::ModelConfig::named("r50-2x").unwrap();
    let specs = expected_keys(&mask_rcnn_burn::internals::MaskRcnn::new(&config, config.num_classes(), &burn::tensor::Device::flex()));
    let dir = fixtures().join("fuzz");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let error = match name.split('-').next().unwrap() {
            "image_decode" => {
                let limits = mask_rcnn_burn::image::ImageLimits { max_pixels: 4 << 20 };
                mask_rcnn_burn::BgrImage::decode_with_limits(&bytes, &name, &limits).err().map(|e| e.to_string())
            }
            "safetensors" => {
                let _ = StateDict::from_safetensors_bytes_for(&bytes, &name, &specs);
                StateDict::from_safetensors_bytes(&bytes, &name).err().map(|e| e.to_string())
            }
            "pth" => {
                let copy = scratch(&name);
                std::fs::write(&copy, &bytes).unwrap();
                let _ = StateDict::from_pth_for(&copy, &specs);
                StateDict::from_pth(&copy).err().map(|e| e.to_string())
            }
            "config_toml" => mask_rcnn_burn::ModelConfig::from_toml_str(&String::from_utf8_lossy(&bytes)).err().map(|e| e.to_string()),
            other => panic!("{name}: unknown fuzz target `{other}`"),
        };
        println!("{name}: {}", error.as_deref().unwrap_or("valid"));
        assert!(error.is_some(), "{name} decodes: every crash so far was malformed input");
        seen += 1;
    }
    assert!(seen >= 1);
}
