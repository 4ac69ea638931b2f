//! Test texts shared by the unit tests (via `#[path]`) and the integration tests.
#![allow(dead_code)]

use std::path::Path;

/// Hand-picked texts: each line of the pre-tokenizer patterns, and the scripts and symbols a
/// chat prompt carries.
pub const CORPUS: &[&str] = &[
    "",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Retrieval-augmented generation (RAG) grounds answers in documents; cite [doc1].",
    // Contractions in every case, and near misses.
    "I'm sure it's fine, isn't it? We'll see; they've gone, you'd know, we're here.",
    "I'M SURE IT'S FINE, ISN'T IT? WE'LL SEE; THEY'VE GONE, YOU'D KNOW, WE'RE HERE.",
    "'S 'T 'Re 'rE 'VE 'M 'Ll 'lL 'D 'x 'r 'l 'v 're",
    "don'tcha 'twas rock'n'roll O'Neil l'homme",
    "'ſ 'ſt ſ'ſ Kelvin K 'K",
    // Code.
    "fn main() {\n    let x: Vec<u8> = vec![1, 2, 3];\n    println!(\"{x:?}\");\n}\n",
    "def f(a, b=2, *args, **kw):\n\treturn a // b if b else None  # comment\n",
    "<div class=\"x\"><a href='/path/to/file.html?q=1&r=2'>link</a></div>",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';--",
    "https://example.com/a/b/c//d///e?x=1#frag http://localhost:8080/",
    "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}",
    // White space runs.
    "a  b   c    d\t\te\t \tf \t g",
    "trailing spaces   ",
    "trailing newline\n",
    "trailing mix \n \n  ",
    "  leading spaces",
    "\n\n\nleading newlines",
    "windows\r\nline\r\nendings\r\n\r\n",
    "old mac\rline\r\rends",
    "spaces before newline   \n   and after",
    "\t\n\t\n\tx",
    " \u{a0}\u{2003}\u{3000}x\u{2028}y\u{2029}z\u{85}w\u{b}\u{c}v",
    "   ",
    "\n",
    " ",
    "\r\n",
    // Numbers.
    "1 12 123 1234 12345 123456 1234567 12345678901234567890",
    "3.14159 -2.5e10 0x1F 1,000,000 10% $99.99 2024-05-13T12:00:00Z",
    "٠١٢٣٤٥٦٧٨٩ ۱۲۳ १२३ ½ ¾ ² ³ Ⅻ ⅷ ① ⑽",
    // Punctuation runs, with newlines and slashes.
    "!!!\n???\r\n...///\n//\n/*/ */ <!-- --> => -> :: ... ?!",
    "end.\n\nNext paragraph.\n/\n/path\n",
    "a/b/c // d /// e\n/\r\n/",
    "—–-‒ «quoted» „low“ ‘single’ “double” … • · ¶ § © ® ™ ° ± × ÷",
    // CJK, Korean, Japanese.
    "你好，世界！我们今天讨论检索增强生成。",
    "日本語のテキスト、カタカナとひらがな。ｶﾀｶﾅ",
    "한국어 텍스트입니다. 안녕하세요!",
    // Right-to-left scripts.
    "مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣.",
    "שלום עולם, זה טקסט בעברית.",
    // Marks: Devanagari, Thai, decomposed accents, stray combining marks.
    "नमस्ते दुनिया, यह हिंदी है।",
    "สวัสดีชาวโลก ภาษาไทย",
    "cafe\u{301} re\u{301}sume\u{301} na\u{308}ive A\u{30a}ngstro\u{308}m",
    "\u{301}\u{302} x\u{20dd} !\u{301} !!\u{301}\u{302} 1\u{301} \u{301}A \u{301}BC",
    // Emoji, ZWJ sequences, flags, skin tones, keycaps, variation selectors.
    "😀 😃😄 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇩🇪 ❤️ ☺︎ 1️⃣ #️⃣ 🧑🏿‍💻",
    "emoji😀inside👍🏽words and after!🎉\n🎉",
    // Case mixes (o200k splits camelCase).
    "camelCase PascalCase snake_case kebab-case SCREAMING_CASE HTTPServer XMLHttpRequest iPhone eBay",
    "McDonald's O'REILLY'S ABCdef ABcDeF aBC ǅungla ǈubljana ǋ ǲ",
    "ʰʲ ˈstress ーー ーカ ªº ᵃᵇ Ⅷ ꜰ",
    "Ελληνικά ΚΕΦΑΛΑΙΑ Русский ТЕКСТ Straße STRASSE ẞ ß İstanbul ıi",
    // Controls and odd characters.
    "\u{0}\u{1}\u{7f}\u{200b}\u{200d}\u{feff}\u{fffd}\u{e000}\u{10ffff}",
    "tab\tseparated\tvalues\n1\t2\t3\n",
    // Special token text is ordinary text.
    "<|endoftext|> <|im_start|>user<|im_end|> <|endofprompt|>",
];

/// Pieces that repeat, to exercise the merge of pieces of 100 bytes and more.
pub fn long_texts() -> Vec<String> {
    vec![
        "ab".repeat(80),
        "a".repeat(300),
        "Abc".repeat(60),
        "!".repeat(150),
        "!?".repeat(120) + "\n\n",
        " ".repeat(200) + "x",
        "\n".repeat(130),
        " \n".repeat(90) + "y",
        "你好世界".repeat(20),
        "نص".repeat(60),
        "1234567890".repeat(30),
        "😀".repeat(40),
        "e\u{301}".repeat(70),
        "aGVsbG8gd29ybGQhIHRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dCB0aGF0IGdvZXMgb24gYW5kIG9u"
            .repeat(4),
        "x".repeat(10_000),
    ]
}

/// The markdown documents in the repository's `data/` directory, by file name.
pub fn data_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let text = std::fs::read_to_string(&path).expect("utf-8 document");
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the data/ corpus, found {} files",
        files.len()
    );
    files
}

/// Fragments random texts are made of: one or a few characters of each class the patterns
/// distinguish, and the boundaries between them.
const FRAGMENTS: &[&str] = &[
    "a",
    "z",
    "Q",
    "word",
    "Word",
    "WORD",
    "wOrD",
    "camelCase",
    "HTTPServer",
    "iOS",
    "x",
    "'",
    "'s",
    "'S",
    "'t",
    "'T",
    "'re",
    "'RE",
    "'rE",
    "'ve",
    "'Ve",
    "'m",
    "'M",
    "'ll",
    "'LL",
    "'lL",
    "'d",
    "'D",
    "'r",
    "'l",
    "'v",
    "'ſ",
    "K",
    "ſ",
    "0",
    "7",
    "42",
    "123",
    "2024",
    "9999999",
    "٣",
    "١٢٣٤",
    "½",
    "²",
    "Ⅻ",
    "①",
    " ",
    " ",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n",
    "\r\n",
    "\r",
    " \n",
    "\n ",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "\u{85}",
    "\u{b}",
    "\u{c}",
    ".",
    ",",
    "!",
    "?",
    ";",
    ":",
    "-",
    "_",
    "/",
    "//",
    "\\",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "`",
    "#",
    "@",
    "$",
    "%",
    "&",
    "*",
    "+",
    "=",
    "<",
    ">",
    "|",
    "~",
    "^",
    "...",
    "->",
    "—",
    "…",
    "«",
    "»",
    "“",
    "”",
    "‘",
    "’",
    "€",
    "©",
    "你",
    "好",
    "世界",
    "日本語",
    "カタカナ",
    "ｶ",
    "한국어",
    "ー",
    "مرحبا",
    "عربي",
    "שלום",
    "नमस्ते",
    "สวัสดี",
    "Ελλάδα",
    "ΑΒΓ",
    "Русский",
    "ТЕКСТ",
    "ß",
    "ẞ",
    "İ",
    "ı",
    "ǅ",
    "ǈ",
    "ʰ",
    "ª",
    "ᵃ",
    "\u{301}",
    "\u{308}",
    "\u{20dd}",
    "\u{fe0f}",
    "\u{200d}",
    "\u{200b}",
    "\u{feff}",
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "🇫🇷",
    "❤️",
    "1️⃣",
    "🎉",
    "\u{0}",
    "\u{7f}",
    "\u{fffd}",
];

/// A seeded xorshift64* generator: the random tests are reproducible from their seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }

    /// A text of up to `max_fragments` fragments, now and then a random code point, a repeated
    /// fragment or a random byte-level ASCII character.
    pub fn text(&mut self, max_fragments: usize) -> String {
        let mut text = String::new();
        for _ in 0..=self.below(max_fragments) {
            match self.below(20) {
                0 => text.push(self.code_point()),
                1 => {
                    let fragment = FRAGMENTS[self.below(FRAGMENTS.len())];
                    text.push_str(&fragment.repeat(1 + self.below(6)));
                }
                2 => text.push(char::from(self.below(128) as u8)),
                _ => text.push_str(FRAGMENTS[self.below(FRAGMENTS.len())]),
            }
        }
        text
    }

    /// Any Unicode scalar value, weighted towards the planes that hold most text.
    pub fn code_point(&mut self) -> char {
        let limit = match self.below(4) {
            0 => 0x800,
            1 => 0x1_0000,
            2 => 0x3_0000,
            _ => 0x11_0000,
        };
        loop {
            if let Some(c) = char::from_u32(self.below(limit) as u32) {
                return c;
            }
        }
    }
}
