//! Embeds the app (`app/`) into the component: every file but `index.html` is renamed
//! with a hash of its content (`/assets/app.<hash>.js`), `index.html` is rewritten to
//! name them so, and each file gets gzip and brotli variants when they are smaller.
//! Writes `$OUT_DIR/assets.rs`, which `src/lib.rs` includes: one `Asset` per file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

/// The content hash in a name: SipHash-2-4 with zero keys (std's `SipHasher`, whose
/// algorithm is fixed), 64 bits as 16 hex digits: ample against collisions between the
/// versions of one file, and no crypto crate in the build script (a build-dependency
/// on sha2 would resolve its features apart from the host's; `.ci/check-features.sh`).
#[allow(deprecated)]
fn content_hash(bytes: &[u8]) -> String {
    use std::hash::Hasher as _;
    let mut hasher = std::hash::SipHasher::new();
    hasher.write(bytes);
    format!("{:016x}", hasher.finish())
}

struct Built {
    served_path: String,
    content_type: &'static str,
    immutable: bool,
    hash: String,
    identity: Vec<u8>,
    gzip: Option<Vec<u8>>,
    brotli: Option<Vec<u8>>,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" | "webmanifest" => "application/manifest+json",
        "png" => "image/png",
        "woff2" => "font/woff2",
        other => panic!("app/: no content type known for `.{other}` files; add it to build.rs"),
    }
}

fn compressible(content_type: &str) -> bool {
    !(content_type.starts_with("image/png") || content_type.starts_with("font/woff2"))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &data[..], &mut out, &params).unwrap();
    out
}

fn build(served_path: String, name: &str, identity: Vec<u8>, immutable: bool) -> Built {
    let content_type = content_type(name);
    let hash = content_hash(&identity);
    let (gzip, brotli) = if compressible(content_type) {
        let smaller = |v: Vec<u8>| (v.len() < identity.len()).then_some(v);
        (smaller(gzip(&identity)), smaller(brotli(&identity)))
    } else {
        (None, None)
    };
    Built {
        served_path,
        content_type,
        immutable,
        hash,
        identity,
        gzip,
        brotli,
    }
}

fn main() {
    let app = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("app");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed={}", app.display());

    let mut names: Vec<String> = std::fs::read_dir(&app)
        .expect("components/ui/app")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    assert!(
        names.iter().any(|n| n == "index.html"),
        "app/index.html is missing"
    );

    let mut built = Vec::new();
    let mut renames = Vec::new();
    for name in names.iter().filter(|n| *n != "index.html") {
        let path = app.join(name);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        let (stem, ext) = name.rsplit_once('.').expect("app/ files have an extension");
        let hash = content_hash(&bytes);
        let served = format!("/assets/{stem}.{hash}.{ext}");
        renames.push((format!("/assets/{name}"), served.clone()));
        built.push(build(served, name, bytes, true));
    }

    let index_path = app.join("index.html");
    println!("cargo:rerun-if-changed={}", index_path.display());
    let mut index = std::fs::read_to_string(&index_path).unwrap();
    for (from, to) in &renames {
        index = index.replace(&format!("\"{from}\""), &format!("\"{to}\""));
    }
    // Every `"/assets/..."` left in the page must name a file that exists.
    for (at, _) in index.match_indices("\"/assets/") {
        let reference = &index[at + 1..];
        let reference = &reference[..reference.find('"').unwrap_or(reference.len())];
        assert!(
            renames.iter().any(|(_, to)| to == reference),
            "app/index.html names {reference}, which is not a file of app/"
        );
    }
    built.push(build(
        "/index.html".to_string(),
        "index.html",
        index.into_bytes(),
        false,
    ));

    let mut table = String::from(
        "/// The app's files, as `build.rs` embedded them.\npub static ASSETS: &[Asset] = &[\n",
    );
    for (i, asset) in built.iter().enumerate() {
        let write = |suffix: &str, data: &[u8]| -> String {
            let file = out.join(format!("asset-{i}.{suffix}"));
            std::fs::write(&file, data).unwrap();
            format!("include_bytes!({:?})", file.display().to_string())
        };
        let variant = |suffix: &str, data: &Option<Vec<u8>>| match data {
            Some(data) => format!("Some({})", write(suffix, data)),
            None => "None".to_string(),
        };
        writeln!(
            table,
            "    Asset {{ path: {:?}, content_type: {:?}, immutable: {}, hash: {:?}, identity: {}, gzip: {}, brotli: {} }},",
            asset.served_path,
            asset.content_type,
            asset.immutable,
            asset.hash,
            write("raw", &asset.identity),
            variant("gz", &asset.gzip),
            variant("br", &asset.brotli),
        )
        .unwrap();
    }
    table.push_str("];\n");
    std::fs::write(out.join("assets.rs"), table).unwrap();
}
