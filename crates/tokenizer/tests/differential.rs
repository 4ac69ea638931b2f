//! Token ids must be exactly those of tiktoken (through tiktoken-rs, which vendors its code and
//! ships OpenAI's vocabulary files), for every kind of text a prompt can carry.

mod support;

use chatgate_tokenizer::Encoding;
use support::Rng;
use tiktoken_rs::CoreBPE;

fn reference(encoding: Encoding) -> &'static CoreBPE {
    match encoding {
        Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
    }
}

/// Asserts `encode` and `count` agree with tiktoken's `encode_ordinary`, showing the first
/// differing tokens as text when they do not.
fn assert_matches_tiktoken(encoding: Encoding, text: &str, origin: &str) {
    let reference = reference(encoding);
    let expected = reference.encode_ordinary(text);
    let actual = encoding.encode(text);
    if actual != expected {
        let first_difference = actual
            .iter()
            .zip(&expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        let show = |ids: &[u32]| -> Vec<String> {
            ids.iter()
                .skip(first_difference.saturating_sub(2))
                .take(6)
                .map(|&id| {
                    let bytes = reference.decode_bytes(&[id]).unwrap_or_default();
                    format!("{id}:{:?}", String::from_utf8_lossy(&bytes))
                })
                .collect()
        };
        panic!(
            "{} differs from tiktoken on {origin} {text:?}\n at token {first_difference}\n ours:     {:?}\n tiktoken: {:?}",
            encoding.name(),
            show(&actual),
            show(&expected),
        );
    }
    assert_eq!(
        encoding.count(text),
        expected.len(),
        "{} count of {origin} {text:?}",
        encoding.name()
    );
}

#[test]
fn hand_picked_texts_encode_as_tiktoken_does() {
    for encoding in Encoding::ALL {
        for text in support::CORPUS {
            assert_matches_tiktoken(encoding, text, "corpus text");
        }
        // Every pair of corpus texts back to back, so each ending meets each beginning.
        for first in support::CORPUS {
            for second in support::CORPUS {
                assert_matches_tiktoken(encoding, &format!("{first}{second}"), "corpus pair");
            }
        }
    }
}

#[test]
fn pieces_of_a_hundred_bytes_and_more_encode_as_tiktoken_does() {
    for encoding in Encoding::ALL {
        for text in support::long_texts() {
            assert_matches_tiktoken(encoding, &text, "long text");
            assert_matches_tiktoken(encoding, &format!(" {text}"), "long text after a space");
        }
    }
}

#[test]
fn repository_documents_encode_as_tiktoken_does() {
    for encoding in Encoding::ALL {
        for (name, text) in support::data_files() {
            assert_matches_tiktoken(encoding, &text, &name);
        }
    }
}

#[test]
fn random_texts_encode_as_tiktoken_does() {
    for encoding in Encoding::ALL {
        let mut rng = Rng::new(0x5eed_0001);
        for _ in 0..3000 {
            let text = rng.text(24);
            assert_matches_tiktoken(encoding, &text, "random text");
        }
    }
}

#[test]
fn random_code_points_encode_as_tiktoken_does() {
    for encoding in Encoding::ALL {
        let mut rng = Rng::new(0x5eed_0002);
        for _ in 0..1000 {
            let text: String = (0..1 + rng.below(12)).map(|_| rng.code_point()).collect();
            assert_matches_tiktoken(encoding, &text, "random code points");
        }
    }
}

#[test]
fn counting_a_text_is_counting_its_ids() {
    let text = support::CORPUS.join("\n");
    for encoding in Encoding::ALL {
        assert_eq!(encoding.count(&text), encoding.encode(&text).len());
        assert_eq!(encoding.count(""), 0);
        assert!(encoding.encode("").is_empty());
    }
}
