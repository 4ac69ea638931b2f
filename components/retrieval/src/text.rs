//! Text analysis shared by ranking and answer extraction: Unicode-aware lowercasing,
//! splitting on non-alphanumerics, a compact English stop-word list and the Porter
//! (1980) suffix stemmer.
//!
//! `completion-extractive` compiles this same file (via `#[path]`) so that a question
//! matches a passage's sentences exactly as it matched the passage during retrieval.

/// Words too frequent to say anything about a passage. BM25's idf already damps common
/// words, so the list stays short; it mostly keeps question words ("what", "how") from
/// making unrelated sentences look relevant.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "been",
    "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had",
    "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me",
    "my", "of", "on", "or", "our", "s", "she", "should", "so", "such", "t", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those", "to", "too", "us", "was",
    "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with",
    "would", "you", "your",
];

pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Lowercased words of `text`, split on every character that is not alphanumeric.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The index terms of `text`: words without stop words, stemmed.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .filter(|word| !is_stop_word(word))
        .map(|word| stem(&word))
        .collect()
}

/// Porter stem of a lowercase word. Words containing anything but ASCII letters
/// (numbers, identifiers such as `rs256`, non-English words) are returned unchanged,
/// because the rules only make sense for English.
pub fn stem(word: &str) -> String {
    if word.len() <= 2 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return word.to_string();
    }
    let mut stemmer = Porter {
        b: word.as_bytes().to_vec(),
    };
    stemmer.step1a();
    stemmer.step1b();
    stemmer.step1c();
    stemmer.step2();
    stemmer.step3();
    stemmer.step4();
    stemmer.step5();
    // Only ASCII letters went in and only ASCII letters are ever appended.
    String::from_utf8(stemmer.b).unwrap_or_else(|_| word.to_string())
}

/// The algorithm from M. F. Porter, "An algorithm for suffix stripping" (1980).
/// `len` arguments name a prefix of the word: the stem left once a suffix is removed.
struct Porter {
    b: Vec<u8>,
}

impl Porter {
    fn is_consonant(&self, i: usize) -> bool {
        match self.b[i] {
            b'a' | b'e' | b'i' | b'o' | b'u' => false,
            b'y' => i == 0 || !self.is_consonant(i - 1),
            _ => true,
        }
    }

    /// Porter's m: the number of vowel-consonant sequences in the first `len` letters.
    fn measure(&self, len: usize) -> usize {
        let mut i = 0;
        while i < len && self.is_consonant(i) {
            i += 1;
        }
        let mut m = 0;
        loop {
            while i < len && !self.is_consonant(i) {
                i += 1;
            }
            if i >= len {
                return m;
            }
            while i < len && self.is_consonant(i) {
                i += 1;
            }
            m += 1;
        }
    }

    fn has_vowel(&self, len: usize) -> bool {
        (0..len).any(|i| !self.is_consonant(i))
    }

    fn ends_with_double_consonant(&self, len: usize) -> bool {
        len >= 2 && self.b[len - 1] == self.b[len - 2] && self.is_consonant(len - 1)
    }

    /// consonant-vowel-consonant ending whose last letter is not w, x or y (e.g. "hop").
    fn ends_cvc(&self, len: usize) -> bool {
        len >= 3
            && self.is_consonant(len - 3)
            && !self.is_consonant(len - 2)
            && self.is_consonant(len - 1)
            && !matches!(self.b[len - 1], b'w' | b'x' | b'y')
    }

    fn ends(&self, suffix: &str) -> bool {
        self.b.ends_with(suffix.as_bytes())
    }

    fn replace_suffix(&mut self, suffix_len: usize, replacement: &str) {
        self.b.truncate(self.b.len() - suffix_len);
        self.b.extend_from_slice(replacement.as_bytes());
    }

    /// Applies the rule for the longest matching suffix if its stem has measure above
    /// `min_measure`. Rules are listed so that a longer suffix precedes any suffix it ends
    /// with; as in Porter, a failed condition does not fall back to a shorter suffix.
    fn apply_longest(&mut self, rules: &[(&str, &str)], min_measure: usize) {
        if let Some(&(suffix, replacement)) = rules.iter().find(|(suffix, _)| self.ends(suffix)) {
            let stem_len = self.b.len() - suffix.len();
            if self.measure(stem_len) > min_measure {
                self.replace_suffix(suffix.len(), replacement);
            }
        }
    }

    fn step1a(&mut self) {
        if self.ends("sses") || self.ends("ies") {
            self.b.truncate(self.b.len() - 2);
        } else if !self.ends("ss") && self.ends("s") {
            self.b.pop();
        }
    }

    fn step1b(&mut self) {
        if self.ends("eed") {
            if self.measure(self.b.len() - 3) > 0 {
                self.b.pop();
            }
            return;
        }
        let suffix_len = if self.ends("ed") {
            2
        } else if self.ends("ing") {
            3
        } else {
            return;
        };
        let stem_len = self.b.len() - suffix_len;
        if !self.has_vowel(stem_len) {
            return;
        }
        self.b.truncate(stem_len);
        if self.ends("at") || self.ends("bl") || self.ends("iz") {
            self.b.push(b'e');
        } else if self.ends_with_double_consonant(stem_len)
            && !matches!(self.b[stem_len - 1], b'l' | b's' | b'z')
        {
            self.b.pop();
        } else if self.measure(stem_len) == 1 && self.ends_cvc(stem_len) {
            self.b.push(b'e');
        }
    }

    fn step1c(&mut self) {
        let len = self.b.len();
        if self.ends("y") && self.has_vowel(len - 1) {
            self.b[len - 1] = b'i';
        }
    }

    fn step2(&mut self) {
        self.apply_longest(
            &[
                ("ational", "ate"),
                ("tional", "tion"),
                ("enci", "ence"),
                ("anci", "ance"),
                ("izer", "ize"),
                ("abli", "able"),
                ("alli", "al"),
                ("entli", "ent"),
                ("eli", "e"),
                ("ousli", "ous"),
                ("ization", "ize"),
                ("ation", "ate"),
                ("ator", "ate"),
                ("alism", "al"),
                ("iveness", "ive"),
                ("fulness", "ful"),
                ("ousness", "ous"),
                ("aliti", "al"),
                ("iviti", "ive"),
                ("biliti", "ble"),
            ],
            0,
        );
    }

    fn step3(&mut self) {
        self.apply_longest(
            &[
                ("icate", "ic"),
                ("ative", ""),
                ("alize", "al"),
                ("iciti", "ic"),
                ("ical", "ic"),
                ("ful", ""),
                ("ness", ""),
            ],
            0,
        );
    }

    fn step4(&mut self) {
        const SUFFIXES: &[&str] = &[
            "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion",
            "ou", "ism", "ate", "iti", "ous", "ive", "ize",
        ];
        // Longest first, so "ement" wins over "ment" and "ent".
        let Some(suffix) = SUFFIXES
            .iter()
            .filter(|suffix| self.ends(suffix))
            .max_by_key(|suffix| suffix.len())
        else {
            return;
        };
        let stem_len = self.b.len() - suffix.len();
        let allowed =
            *suffix != "ion" || (stem_len > 0 && matches!(self.b[stem_len - 1], b's' | b't'));
        if allowed && self.measure(stem_len) > 1 {
            self.b.truncate(stem_len);
        }
    }

    fn step5(&mut self) {
        let len = self.b.len();
        if self.ends("e") {
            let m = self.measure(len - 1);
            if m > 1 || (m == 1 && !self.ends_cvc(len - 1)) {
                self.b.pop();
            }
        }
        let len = self.b.len();
        if self.ends("ll") && self.measure(len) > 1 {
            self.b.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn porter_matches_the_published_examples() {
        for (word, expected) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("cats", "cat"),
            ("feed", "feed"),
            ("agreed", "agre"),
            ("plastered", "plaster"),
            ("motoring", "motor"),
            ("sing", "sing"),
            ("conflated", "conflat"),
            ("hopping", "hop"),
            ("falling", "fall"),
            ("filing", "file"),
            ("happy", "happi"),
            ("relational", "relat"),
            ("conditional", "condit"),
            ("generalization", "gener"),
            ("hopeful", "hope"),
            ("goodness", "good"),
            ("revival", "reviv"),
            ("adoption", "adopt"),
            ("replacement", "replac"),
            ("controll", "control"),
            ("probate", "probat"),
            ("rate", "rate"),
        ] {
            assert_eq!(stem(word), expected, "stem of {word}");
        }
    }

    #[test]
    fn inflections_of_one_word_share_a_stem() {
        assert_eq!(stem("tokens"), stem("token"));
        assert_eq!(stem("tokenization"), stem("token"));
        assert_eq!(stem("blocks"), stem("blocked"));
        assert_eq!(stem("retrieval"), stem("retrieve"));
    }

    #[test]
    fn non_english_and_alphanumeric_words_are_left_alone() {
        assert_eq!(stem("rs256"), "rs256");
        assert_eq!(stem("429"), "429");
        assert_eq!(stem("données"), "données");
    }

    #[test]
    fn terms_lowercase_split_on_punctuation_and_drop_stop_words() {
        assert_eq!(
            terms("What is the Retry-After header?"),
            vec!["retri", "after", "header"]
        );
        assert_eq!(terms("ÉCOLE"), vec!["école"]);
        assert!(terms("what is it?").is_empty());
    }
}
