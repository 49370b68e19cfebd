//! Headlines for articles that came without a title (the seed format,
//! untitled JSON or text, feed items without titles).
//!
//! A headline is the lead sentence compressed the way sub-editors do, never
//! cut mid-phrase and never with an ellipsis:
//! 1. the lead (the first sentence of five words or more) is cleaned: the
//!    dateline, brackets, a trailing attribution ("..., officials said"),
//!    time phrases ("on Monday", "last week") go; "Shares in X fell"
//!    becomes "X shares fell";
//! 2. a leading subordinate clause ("As talks resume, ...") and an
//!    appositive ("Barclays, the UK's third-biggest bank, has ...") go; a
//!    leading attribution gives way to what was reported: "X said he will
//!    go" -> "X will go", "X said on Twitter talks are hard" -> "X: talks
//!    are hard" (surname), and one set off by commas goes;
//! 3. headline style: articles, auxiliaries ("has been fined" -> "fined"),
//!    adverbs and "its/their" are dropped; headline tense: "X will go" ->
//!    "X to go", "X is recalling" -> "X recalling";
//! 4. the kept material starts at the sentence, or at the name after a
//!    descriptor ("Russian oil firm Yukos" -> "Yukos"), or at the surname of
//!    a person the article calls by it ("Mr Blair", "Blair said"); it ends
//!    at a phrase boundary (not on a function word, only before "of", "to",
//!    "after", a comma, ...) after 5 to 12 words;
//! 5. among those cuts, the one whose words recur most in the article (by
//!    Snowball stem), per word and by how often, wins: recurring words are
//!    the story's own.
//!
//! Tuned on the even lines of the BBC News Summary dev file and checked on
//! the odd ones (BENCHMARKS.md).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

fn set(words: &'static str) -> HashSet<&'static str> {
    words.split_whitespace().collect()
}

static FUNC: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("the a an of to and or but in on for with by at from as that this these those which who whom whose \
         what when where while is are was were be been being has have had do does did will would shall should can could \
         may might must not no its it their his her our your my than then so if into onto over under about after before \
         since until up out off per via amid despite during between among against s own also just very more most such \
         there here he she they we i you them him us me one some any all both each every other new")
});
/// Words a headline may be cut before (phrase starts).
static BOUND: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("of to in on for with by at from as into after before over under about against amid despite during \
         between among and but or than including while because which who whose where when that if although though saying \
         following since until via")
});
static SUBORD: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("as when while after before although though despite if since because with following amid in on at for by once unless whilst until")
});
static PAST: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("been won made told seen given taken hit cut set put lost left become come gone done said shown paid sold bought held found kept got run")
});
static VERBISH: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("is are was were has have had will would may might could can should must said says")
});
static NEEDS_TO: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("able eager set due likely expected ready going unable willing keen forced poised about")
});
static NEEDS_OF: LazyLock<HashSet<&str>> =
    LazyLock::new(|| set("part one number rest some most end lot kind series"));
static MODALS: LazyLock<HashSet<&str>> =
    LazyLock::new(|| set("may might could would should will must can shall"));
static SAYING: LazyLock<HashSet<&str>> =
    LazyLock::new(|| set("said says say told added according claimed reported announced insisted"));
static ADVERBS: LazyLock<HashSet<&str>> =
    LazyLock::new(|| set("also now still just already again currently reportedly even further"));
static NOT_ADVERBS: LazyLock<HashSet<&str>> = LazyLock::new(|| {
    set("family supply rally likely unlikely early only italy july assembly monopoly weekly monthly daily yearly quarterly \
         friendly elderly costly lonely ugly holy silly lovely deadly orderly")
});

const DAYS: &str = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday";
const MONTHS: &str =
    "January|February|March|April|May|June|July|August|September|October|November|December";
const PERIOD: &str =
    "week|month|year|season|weekend|summer|winter|spring|autumn|decade|century|time";
const SAY: &str = "said|says|say|has said|have said|had said|told|tells|claimed|claims|warned|warns|reported|reports|announced|\
announces|insisted|insists|argued|argues|believes|believe|confirmed|revealed|suggested|suggests|show|shows|\
showed|added|adds|is reporting|are reporting";

/// Compiles a pattern with ASCII classes: the Unicode tables of `\b`, `\s`,
/// `\w` and `\d` cost more to compile than headlining hundreds of articles,
/// and these patterns only ever look at English words and digits.
fn re(pattern: &str) -> Regex {
    let ascii = pattern
        .replace(r"\b", r"(?-u:\b)")
        .replace(r"\s", r"[ \t\r\n]")
        .replace(r"\w", "[A-Za-z0-9_]")
        .replace(r"\d", "[0-9]");
    Regex::new(&ascii).expect("headline patterns compile")
}

static DATELINE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:[A-Z][A-Z .,'-]{2,}\s*(?:\([^)]*\))?\s*[-\x{2013}\x{2014}:]\s+)"));
static BRACKETS: LazyLock<Regex> = LazyLock::new(|| re(r"\s*\([^)]*\)"));
/// An attribution set off by commas mid-sentence: "The market, former
/// minister Michael Heseltine once said, has no morality".
static ATTR_MID: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r",\s[^,]{3,70}?\b(?:once |has |have |had )?(?:said|says|wrote|writes|argued|argues|believes),\s",
    )
});
static ATTR_TAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"(?:,|\s-)\s*(?:(?:according to|says|said|say)\b[^,]{{0,70}}|[^,]{{0,70}}?\b(?:{SAY})(?:\s+(?:on\s+)?\w+day)?)\s*[.!?"']*$"#
    ))
});
/// "X said (on Twitter) (that) ...": the speaker (group 1) and, after the
/// match, what was said.
static ATTR_HEAD: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^([^,]{{2,60}}?)\s+(?:has |have |had )?(?:said|says|say|told (?:reporters|journalists|the \w+)|believes|believe|insists|insisted|claims|claimed|stated|states|thinks|argued|argues)(?:\s+(?:on|in|to)\s+(?:Twitter|Facebook|Instagram|a statement|an interview|(?:the )?(?:radio|television|TV|BBC|reporters|journalists)|(?:{DAYS})))?\s+(?:that\s+)?"
    ))
});
static PASSIVE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(?:is|are|was|were|be|been)$"));
static TIME_POSS: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"\b(?:(?:this|last|next) )?(?:year|week|month|season|weekend|{DAYS})'s "
    ))
});
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    let alternatives = [
        format!(r"\b(?:(?:on|by|from|until|since|before|after|last|this|next|earlier|later)\s+)?(?:(?:earlier|later)\s+)?(?:this|last|next)?\s*(?:{DAYS})\b(?:\s+(?:night|morning|evening|afternoon))?"),
        format!(r"\b(?:earlier|later)?\s*(?:this|last|next)\s+(?:{PERIOD})\b"),
        format!(r"\b(?:in|by|since|from|during|until|for|of)\s+(?:(?:early|late|mid)[- ])?(?:(?:{MONTHS})(?:\s+\d{{4}})?|\d{{4}})\b"),
        format!(r"\b(?:on|by)\s+\d{{1,2}}\s+(?:{MONTHS})\b"),
        r"\b(?:yesterday|today|tonight|tomorrow|so far|recently)\b".to_owned(),
        r"\bin\s+the\s+(?:past|last|next|coming)\s+(?:few\s+)?(?:\w+\s+)?(?:days|weeks|months|years|decades)\b".to_owned(),
        r"\b(?:earlier|later)\s+(?:this|that|in the)\s+\w+\b".to_owned(),
    ];
    re(&alternatives.join("|"))
});
static APPOSITIVE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^([^,]{2,50}), ([^,]{3,90}), ([a-z].*)$"));
static SPACES: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));
static SPACE_COMMA: LazyLock<Regex> = LazyLock::new(|| re(r"\s+,"));

/// Lowercase, without a possessive `'s` and punctuation, Snowball-stemmed:
/// the forms of one word counted together ("economy", "economies").
/// Stems are cached per thread: an article's words are mostly the last
/// article's words, and stemming every word was most of a headline's cost.
fn stem(word: &str) -> String {
    static STEMMER: LazyLock<rust_stemmers::Stemmer> =
        LazyLock::new(|| rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English));
    thread_local! {
        static CACHE: std::cell::RefCell<HashMap<String, String>> = Default::default();
    }
    let w: String = word
        .to_lowercase()
        .replace("'s", "")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(stem) = cache.get(&w) {
            return stem.clone();
        }
        if cache.len() > 200_000 {
            cache.clear();
        }
        let stem = STEMMER.stem(&w).into_owned();
        cache.insert(w, stem.clone());
        stem
    })
}

fn bare(word: &str) -> String {
    word.to_lowercase()
        .trim_matches(|c| matches!(c, '"' | '\'' | ',' | ';' | ':' | '.'))
        .to_owned()
}

fn starts_upper(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

fn starts_lower(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_lowercase)
}

/// Replaces with `with` only when at least four words are left.
fn keep_if_long(s: String, cleaned: String) -> String {
    if cleaned.split_whitespace().count() >= 4 {
        cleaned
    } else {
        s
    }
}

/// The lead less its dateline, brackets and attributions only.
fn light_clean(sentence: &str) -> String {
    let s = DATELINE.replace(sentence, "").into_owned();
    let s = BRACKETS.replace_all(&s, "").into_owned();
    let s = ATTR_MID.replace(&s, " ").into_owned();
    let tail = ATTR_TAIL.replace(&s, "").into_owned();
    keep_if_long(s, tail)
        .trim_matches(|c| matches!(c, ' ' | '.' | '!' | '?'))
        .to_owned()
}

/// The lead cleaned of what a headline never carries.
fn clean(sentence: &str) -> String {
    let s = sentence
        .replace(['\u{2019}', '\u{2018}'], "'")
        .replace(['\u{201c}', '\u{201d}'], "\"");
    let s = light_clean(&s);
    let s = TIME_POSS.replace_all(&s, "").into_owned();
    let timeless = SPACES
        .replace_all(&TIME.replace_all(&s, ""), " ")
        .trim()
        .to_owned();
    let mut s = keep_if_long(s, timeless);
    // "Shares in Foo Corp fell" -> "Foo Corp shares fell".
    if let Some(rest) = s.strip_prefix("Shares in ") {
        let words: Vec<&str> = rest.split(' ').collect();
        let n = words
            .iter()
            .take_while(|w| starts_upper(w) && !w.ends_with(','))
            .count();
        if n > 0 {
            s = format!("{} shares {}", words[..n].join(" "), words[n..].join(" "))
                .trim()
                .to_owned();
        }
    }
    let s = SPACE_COMMA.replace_all(&s, ",").into_owned();
    s.trim_matches(|c| matches!(c, ' ' | '.' | '!' | '?'))
        .to_owned()
}

/// "Barclays, the UK's third-biggest bank, has seen" -> "Barclays has
/// seen"; "adviser and negotiator, Mykhailo Podolyak, said" -> "Mykhailo
/// Podolyak said" (an appositive that is a name is the better subject).
fn appositive(s: &str) -> String {
    let Some(m) = APPOSITIVE.captures(s) else {
        return s.to_owned();
    };
    let (a, b, c) = (&m[1], &m[2], &m[3]);
    if a.split_whitespace().count() > 5 || !starts_upper(a) {
        return s.to_owned();
    }
    let name = b.split_whitespace().count() <= 3 && b.split_whitespace().all(starts_upper);
    format!("{} {c}", if name { b } else { a })
}

/// What a lead that opens with an attribution reports, the way a
/// sub-editor writes it: "Tony Blair has said he will not take part" ->
/// "Tony Blair will not take part"; "Podolyak said on Twitter communication
/// is ongoing" -> "communication is ongoing". None when the lead does not
/// open with one, or too little would be left.
fn reported(s: &str) -> Option<String> {
    let m = ATTR_HEAD.captures(s)?;
    let speaker = m[1].trim();
    if PASSIVE.is_match(speaker) {
        return None; // "X and Y are said to ..."
    }
    let words: Vec<&str> = speaker.split_whitespace().collect();
    let clause_word = |w: &&str| {
        let l = bare(w);
        starts_lower(w)
            && ((BOUND.contains(l.as_str()) && l != "of")
                || VERBISH.contains(l.as_str())
                || l.ends_with("ed"))
            && l != "for"
    };
    if words.len() > 8 || words.iter().any(clause_word) {
        return None; // not a speaker: "Brown made an appeal after reports claimed ..."
    }
    let rest = s[m.get(0)?.end()..].trim();
    let (first, after) = rest.split_once(' ').unwrap_or((rest, ""));
    let said = match first.to_lowercase().as_str() {
        "he" | "she" | "it" | "they" | "we" | "i" => format!("{speaker} {after}"),
        "he's" | "she's" | "it's" => format!("{speaker} is {after}"),
        "they're" | "we're" => format!("{speaker} are {after}"),
        "his" | "her" | "its" | "their" | "my" | "our" => format!("{speaker}'s {after}"),
        // What was said has a subject of its own: the speaker's name leads,
        // the way headlines attribute ("Hodgson: Premiership should ...").
        _ => match words.last().filter(|w| starts_upper(w)) {
            Some(name) => format!("{name}: {rest}"),
            None => rest.to_owned(),
        },
    };
    (said.split_whitespace().count() >= 4).then_some(said)
}

/// Headline style, word by word: no articles, auxiliaries, adverbs or
/// "its/their".
fn headline_words(s: &str) -> Vec<String> {
    let w: Vec<&str> = s.split_whitespace().collect();
    let mut out = Vec::with_capacity(w.len());
    for (i, &x) in w.iter().enumerate() {
        let lx = bare(x);
        let next = w.get(i + 1).map(|n| bare(n)).unwrap_or_default();
        let next2 = w.get(i + 2).map(|n| bare(n)).unwrap_or_default();
        let prev = if i > 0 {
            w[i - 1].to_lowercase()
        } else {
            String::new()
        };
        let comma = x.ends_with(',');
        if !comma && matches!(lx.as_str(), "the" | "a" | "an" | "its" | "their") {
            continue;
        }
        let adverb = ADVERBS.contains(lx.as_str())
            || (x.chars().all(|c| !c.is_uppercase())
                && lx.ends_with("ly")
                && lx.chars().count() > 5
                && !NOT_ADVERBS.contains(lx.as_str()));
        if !comma && adverb {
            continue;
        }
        if !MODALS.contains(prev.as_str()) {
            let participle = |w: &str| w.ends_with("ed") || w.ends_with("en") || PAST.contains(w);
            let have = matches!(lx.as_str(), "has" | "have" | "had");
            if have && (next.ends_with("ed") || PAST.contains(next.as_str())) && next != "been" {
                continue; // "has rejected" -> "rejected"
            }
            if have && next == "been" && participle(&next2) {
                continue; // "has been fined" -> "fined"
            }
            let after_modal = i > 1 && MODALS.contains(w[i - 2].to_lowercase().as_str());
            if lx == "been"
                && matches!(prev.as_str(), "has" | "have" | "had")
                && !after_modal
                && participle(&next)
            {
                continue;
            }
            if matches!(lx.as_str(), "was" | "were") && next.ends_with("ed") {
                continue; // "was arrested" -> "arrested"
            }
            if matches!(lx.as_str(), "is" | "are") && next == "to" {
                continue; // "is to recall" -> "to recall"
            }
        }
        out.push(x.to_owned());
    }
    out
}

/// Words after which "will" and "is" stay: a pronoun's "he will" is no
/// headline's "to".
static PRONOUNS: LazyLock<HashSet<&str>> =
    LazyLock::new(|| set("it he she they we i you there that which who this what"));

/// Headline tense: "Giggs will captain Wales" -> "Giggs to captain Wales",
/// "GM is recalling cars" -> "GM recalling cars", when the word before is a
/// content word (not a pronoun, not a clause's end) and the verb is not
/// negated.
fn headline_tense(w: Vec<String>) -> Vec<String> {
    let content = |w: &[String], k: usize| {
        let prev = &w[k - 1];
        !FUNC.contains(bare(prev).as_str())
            && !PRONOUNS.contains(prev.to_lowercase().as_str())
            && !prev.ends_with(',')
    };
    let n = w.len();
    let will: Vec<String> = (0..n)
        .map(|k| {
            let to = w[k] == "will"
                && k > 0
                && k + 1 < n
                && w[k + 1].to_lowercase() != "not"
                && content(&w, k);
            if to {
                "to".to_owned()
            } else {
                w[k].clone()
            }
        })
        .collect();
    (0..n)
        .filter(|&k| {
            let copula = matches!(
                will[k].to_lowercase().as_str(),
                "is" | "are" | "was" | "were"
            ) && k > 0
                && k + 1 < n
                && !matches!(will[k + 1].to_lowercase().as_str(), "not" | "no")
                && content(&will, k);
            !copula
        })
        .map(|k| will[k].clone())
        .collect()
}

/// How likely a word is to be in the headline: function words hardly,
/// words that recur in the article the more the more they recur.
fn weight(word: &str, counts: &HashMap<String, usize>) -> f32 {
    let lx = bare(word);
    if FUNC.contains(lx.as_str()) {
        return 0.04;
    }
    if SAYING.contains(lx.as_str()) {
        return 0.03;
    }
    let st = stem(word);
    if st.is_empty() {
        return 0.0;
    }
    if st.starts_with(|c: char| c.is_ascii_digit()) {
        return 0.12;
    }
    match counts.get(&st).copied().unwrap_or(0) {
        0 | 1 => 0.09,
        2 => 0.15,
        3 | 4 if starts_upper(word) => 0.4,
        3 | 4 => 0.2,
        5..=8 => 0.45,
        _ => 0.6,
    }
}

/// May a headline end with word `j`? Not on a function word; at the end of
/// the sentence, at a comma, or before a phrase start.
fn ends_phrase(w: &[String], j: usize) -> bool {
    let cur = bare(&w[j]);
    if FUNC.contains(cur.as_str()) {
        return false;
    }
    if j + 1 == w.len() || w[j].ends_with([',', ';', ':']) {
        return true;
    }
    let next = &w[j + 1];
    let nb = bare(next);
    if nb == "to" && (cur.ends_with("ing") || NEEDS_TO.contains(cur.as_str())) {
        return false; // "is going| to", "eager| to"
    }
    if nb == "of" && NEEDS_OF.contains(cur.as_str()) {
        return false; // "as part| of"
    }
    let lower = next.to_lowercase();
    BOUND.contains(lower.trim_matches(|c| c == '"' || c == '\''))
        || matches!(next.as_str(), "-" | "\u{2013}" | "\u{2014}")
}

/// How many ROUGE tokens a word makes ("pre-tax" makes two).
fn tokens(word: &str) -> usize {
    word.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .count()
        .max(1)
}

fn finish(h: &str) -> String {
    let mut h = h
        .trim_matches(|c: char| {
            matches!(
                c,
                ' ' | '.' | ',' | ';' | ':' | '-' | '\u{2013}' | '\u{2014}'
            )
        })
        .to_owned();
    if let Some(first) = h.chars().next().filter(|c| c.is_lowercase()) {
        h = first.to_uppercase().collect::<String>() + &h[first.len_utf8()..];
    }
    if h.matches('"').count() % 2 == 1 {
        h = h.replace('"', "");
    }
    if h.matches('"').count() == 2 && h.starts_with('"') && h.ends_with('"') {
        h = h[1..h.len() - 1].to_owned();
    }
    h.trim().to_owned()
}

/// How often each stem of the candidate words occurs in the article. Only
/// article words that could share a stem with a candidate (same first two
/// letters; Snowball never changes them but in "dying", "lying", "tying")
/// are stemmed: stemming every word was most of a headline's cost.
fn stem_counts(text: &str, starts: &[String]) -> HashMap<String, usize> {
    fn key(word: &str) -> [char; 2] {
        let mut chars = word
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase());
        let k = [chars.next().unwrap_or(' '), chars.next().unwrap_or(' ')];
        match k {
            ['d', 'y'] => ['d', 'i'],
            ['l', 'y'] => ['l', 'i'],
            ['t', 'y'] => ['t', 'i'],
            k => k,
        }
    }
    let wanted: HashSet<[char; 2]> = starts
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(key)
        .collect();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in text.split_whitespace() {
        if wanted.contains(&key(w)) {
            *counts.entry(stem(w)).or_default() += 1;
        }
    }
    counts
}

/// A verb's look: an auxiliary, "said", or a lowercase word in "-ed".
fn verbish(w: &str) -> bool {
    VERBISH.contains(bare(w).as_str())
        || (w.ends_with("ed") && w.chars().all(|c| c.is_ascii_lowercase()))
}

/// Whether the article calls someone by `name` alone, as people are
/// called: "Mr Blair", "Dr Smith", "Blair said", "Smith told".
fn called_by(text: &str, name: &str) -> bool {
    let name = name
        .trim_end_matches(',')
        .trim_end_matches("'s")
        .trim_end_matches("\u{2019}s");
    if name.is_empty() {
        return false;
    }
    [
        "Mr ", "Mrs ", "Ms ", "Miss ", "Dr ", "Mr. ", "Mrs. ", "Dr. ",
    ]
    .iter()
    .any(|title| text.contains(&format!("{title}{name}")))
        || [
            " said",
            " says",
            " told",
            " added",
            " admitted",
            " insisted",
            " claimed",
            " believes",
            " thinks",
        ]
        .iter()
        .any(|verb| text.contains(&format!("{name}{verb}")))
}

/// Whether `word`, lowercased, stands in `text` as a whole word.
fn occurs_lowercase(text: &str, word: &str) -> bool {
    let word = word.to_lowercase();
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(&word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The headline of an article from its paragraphs: 5 to 12 words, a
/// complete phrase, no ellipsis. Empty only for an article with no words.
pub fn headline(paragraphs: &[String]) -> String {
    // The lead: the first sentence of five words or more (paragraphs are
    // split only until it is found).
    let mut first_sentence: Option<&str> = None;
    let mut lead: Option<&str> = None;
    'paragraphs: for p in paragraphs {
        for s in super::split_sentences(p) {
            first_sentence.get_or_insert(s);
            if s.split_whitespace().count() >= 5 {
                lead = Some(s);
                break 'paragraphs;
            }
        }
    }
    let Some(lead) = lead.or(first_sentence) else {
        return String::new();
    };
    let text = paragraphs.join("\n\n");
    let base = clean(lead);
    let mut starts = vec![base.clone()];
    let first = base
        .split_whitespace()
        .next()
        .map(str::to_lowercase)
        .unwrap_or_default();
    if SUBORD.contains(first.as_str()) {
        if let Some((_, rest)) = base.split_once(',') {
            let rest = rest.trim().to_owned();
            if rest.split_whitespace().count() >= 5 {
                starts = vec![rest];
            } else {
                starts.push(rest);
            }
        }
    }
    let mut starts: Vec<String> = starts.iter().map(|s| appositive(s)).collect();
    if let Some(said) = reported(&starts[0]) {
        starts[0] = said;
    }
    let counts = stem_counts(&text, &starts);
    let count = |w: &str| counts.get(&stem(w)).copied().unwrap_or(0);
    let mut best: Option<(f32, Vec<String>)> = None;
    for start in &starts {
        let w0 = headline_tense(headline_words(start));
        let mut offsets = vec![0];
        // "Russian oil firm Yukos ..." may start at "Yukos" (not "... named
        // best Scottish band" at "Scottish": the sentence has its verb).
        for i in 1..w0.len().min(6) {
            let plain_before = !w0[..i].iter().any(|x| {
                FUNC.contains(x.to_lowercase().as_str()) || x.ends_with(',') || verbish(x)
            });
            let named = starts_upper(&w0[i])
                && ((i == 1 && occurs_lowercase(&text, &w0[0]))
                    || (i > 1 && starts_lower(&w0[i - 1])));
            if named && plain_before {
                offsets.push(i);
                break;
            }
        }
        // A surname: the article calls that person by it alone ("Mr
        // Blair", "Blair said"), and more often than by the name before it
        // ("Tony Blair" -> "Blair"; not "Manchester City" -> "City").
        let surname = |k: usize| count(&w0[k]) > count(&w0[k - 1]) && called_by(&text, &w0[k]);
        // "Liam Gallagher has been fined" may start at "Gallagher".
        for off in offsets.clone() {
            let mut j = off;
            while j < w0.len()
                && starts_upper(&w0[j])
                && !w0[j].contains('\'')
                && !w0[j].ends_with(',')
            {
                j += 1;
            }
            let run = j - off;
            if (2..=3).contains(&run) && j < w0.len() && verbish(&w0[j]) && surname(j - 1) {
                offsets.push(j - 1);
            }
        }
        // So may a name later in the lead that is followed by its verb
        // ("Chancellor Gordon Brown said" -> "Brown said").
        let capital = |w: &str| starts_upper(w) && !FUNC.contains(bare(w).as_str());
        for k in 1..w0.len().saturating_sub(1) {
            let (prev, w, next) = (&w0[k - 1], &w0[k], &w0[k + 1]);
            if capital(prev)
                && capital(w)
                && !capital(next)
                && !w.contains('\'')
                && !w.ends_with(',')
                && !prev.ends_with(',')
                && (verbish(next) || SAYING.contains(bare(next).as_str()))
                && surname(k)
            {
                offsets.push(k);
            }
        }
        offsets.sort_unstable();
        offsets.dedup();
        // Each word's weight and recurrence, once: the cuts share words.
        let weights: Vec<f32> = w0.iter().map(|w| weight(w, &counts)).collect();
        let recurrence: Vec<f32> = w0
            .iter()
            .map(|w| match count(w) {
                n if n > 0 && !FUNC.contains(bare(w).as_str()) => (n as f32).ln(),
                _ => 0.0,
            })
            .collect();
        for off in offsets {
            let w = &w0[off..];
            let (mut sum, mut ntok, mut recurring) = (0f32, 0usize, 0f32);
            for j in 0..w.len().min(12) {
                sum += weights[off + j];
                ntok += tokens(&w[j]);
                recurring += recurrence[off + j];
                if j + 1 < 5 || !ends_phrase(w, j) {
                    continue;
                }
                // Words that recur in the article, per word, count twice:
                // in the weights and by how often they recur; the
                // sentence's own start is slightly less likely than a
                // name inside it.
                let score = sum / (ntok as f32 + 4.0) + 0.4 * recurring / (j + 1) as f32
                    - if off == 0 { 0.04 } else { 0.0 };
                if best.as_ref().is_none_or(|(b, _)| score > *b) {
                    best = Some((score, w[..=j].to_vec()));
                }
            }
        }
    }
    let words = match best {
        Some((_, words)) => words,
        None => {
            let trim = |mut w: Vec<String>| {
                while w.len() > 3 && w.last().is_some_and(|x| FUNC.contains(bare(x).as_str())) {
                    w.pop();
                }
                w
            };
            let w = trim(headline_words(&base).into_iter().take(12).collect());
            if w.len() >= 5 {
                w
            } else {
                // Too short once compressed ("UK house prices dipped"):
                // the lead as written, less dateline and attribution, keeps
                // its time phrase and adverbs ("... dipped slightly in
                // November").
                let plain = trim(
                    light_clean(lead)
                        .split_whitespace()
                        .take(12)
                        .map(str::to_owned)
                        .collect(),
                );
                if plain.len() > w.len() {
                    plain
                } else {
                    w
                }
            }
        }
    };
    let headline = finish(&words.join(" "));
    if !headline.is_empty() {
        return headline;
    }
    // Nothing but debris survived the cleaning ("(CNN) ..."): the lead's
    // first words as they are.
    lead.split_whitespace()
        .take(12)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> String {
        headline(&[text.to_owned()])
    }

    #[test]
    fn leads_become_complete_short_phrases() {
        let seed = "As Russia and Ukraine resume talks, Ukrainian presidential adviser and negotiator, Mykhailo Podolyak, said on Twitter communication is ongoing yet hard, Al Jazeera is reporting. Podolyak said the talks were difficult.";
        let got = h(seed);
        assert!(!got.ends_with('…') && !got.starts_with("As "), "{got}");
        assert_eq!(got, "Podolyak: communication ongoing yet hard");
        assert!(
            h("Belle & Sebastian have been named the best Scottish band of all time by readers of a music magazine. The band were delighted.")
                .starts_with("Belle & Sebastian named best Scottish band"),
            "headline style: no auxiliaries, no articles"
        );
        let blair = h("LONDON (Reuters) - Tony Blair has said he will not take part in a TV debate with his rivals before the election, officials said.");
        assert!(
            blair.starts_with("Tony Blair will not take part in TV debate"),
            "{blair}"
        );
    }

    #[test]
    fn headline_tense_after_a_name_not_after_a_pronoun_or_a_negation() {
        let tense =
            |s: &str| headline_tense(s.split_whitespace().map(str::to_owned).collect()).join(" ");
        assert_eq!(
            tense("Ryan Giggs will captain Wales"),
            "Ryan Giggs to captain Wales"
        );
        assert_eq!(tense("GM is recalling 1m cars"), "GM recalling 1m cars");
        assert_eq!(tense("Profits were hit by costs"), "Profits hit by costs");
        for kept in [
            "he will captain Wales",
            "Giggs will not captain Wales",
            "GM is not recalling cars",
            "firm, which is recalling cars",
            "Wales will",
        ] {
            assert_eq!(tense(kept), kept);
        }
    }

    #[test]
    fn attributions_give_way_to_the_news() {
        // The speaker who is also the subject leads with the news verb.
        let rock = h(
            "Oscar host Chris Rock has said he will steer clear of controversy at the ceremony.",
        );
        assert!(rock.starts_with("Chris Rock to steer clear"), "{rock}");
        // What was said has its own subject: the speaker's name, a colon.
        let hodgson = h("Fulham boss Roy Hodgson says the Premiership should follow the rest of Europe and have a winter break.");
        assert!(
            hodgson.starts_with("Hodgson: Premiership should follow"),
            "{hodgson}"
        );
        // Set off by commas.
        assert_eq!(
            h("The market, former minister Michael Heseltine once said, has no morality."),
            "The market has no morality"
        );
        // "claimed" here is not the lead's attribution: nothing is moved.
        let brown = h("Gordon Brown has made an appeal for unity after reports claimed Mr Blair went back on a pledge.");
        assert!(
            brown.starts_with("Gordon Brown made appeal for unity"),
            "{brown}"
        );
        for lead in [
            "Tony Blair told reporters he would not stand down before the election in May.",
            "Intel said it had found a way to put a silicon-based laser on a chip.",
        ] {
            let got = h(lead);
            assert!(!got.contains(" said") && !got.contains(" told"), "{got}");
        }
    }

    #[test]
    fn a_headline_has_five_words_when_the_lead_has() {
        assert_eq!(
            h("UK house prices dipped slightly in November, the ODPM has said."),
            "UK house prices dipped slightly in November"
        );
    }

    #[test]
    fn a_headline_never_ends_on_a_function_word_or_an_ellipsis() {
        for text in [
            "The government of the United Kingdom and the opposition parties of Scotland and Wales have agreed to a plan for the future of the union.",
            "Shares in Foo Corp fell sharply on Monday after the company warned that its profits would fall by a third this year.",
            "One.",
        ] {
            let got = h(text);
            let last = got.split_whitespace().last().unwrap_or("").to_lowercase();
            assert!(!FUNC.contains(last.as_str()) || got.split_whitespace().count() <= 1, "{got}");
            assert!(!got.contains('…') && !got.contains("..."), "{got}");
        }
        assert!(h("Shares in Foo Corp fell sharply on Monday after the company warned that profits would fall.").starts_with("Foo Corp shares fell"));
    }
}
