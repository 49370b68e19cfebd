//! Editions end to end: the sample articles assembled, rendered, checked
//! against snapshots, an HTML5 parser, Gmail's clipping limit and a real
//! headless browser.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::NaiveDate;
use dailydigest::config::Config;
use dailydigest::edition::Edition;
use dailydigest::ingest::Input;
use dailydigest::pipeline::build_edition;
use dailydigest::render::{Recipient, Renderer};
use support::{chromium, root, CHROMIUM_FLAGS};

/// The fixed edition: the examples (the seed, a second source on the same
/// talks, two reports each of the Shenzhen lockdown and of a TV protest,
/// markets, science, sport) on 14 March 2022.
fn edition() -> Edition {
    // Three full stories, so that the fourth is listed as a headline only.
    // Pinned to the extractive summarizer and grouping by words: the
    // snapshots must not depend on what `models/` holds.
    let config = Config {
        max_stories: 3,
        summarizer: dailydigest::config::Choice::Extractive,
        embedder: dailydigest::config::Embedder::None,
        ..Config::default()
    };
    let date = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
    let (edition, skipped) =
        build_edition(&config, date, vec![Input::Path(root().join("examples"))]).unwrap();
    assert_eq!(skipped, 0);
    edition
}

fn reader() -> Recipient {
    Recipient {
        name: Some("Ada Lovelace".into()),
        email: "ada@example.com".into(),
        unsubscribe_url: "https://digest.example.com/unsubscribe/TOKEN".into(),
        preferences_url: "https://digest.example.com/preferences/TOKEN".into(),
        web_copy: false,
    }
}

fn renderer() -> Renderer {
    Renderer::load(None, "Daily Digest")
        .unwrap()
        .with_base_url("https://digest.example.com")
}

#[test]
fn two_sources_on_one_story_come_out_as_one_story() {
    let e = edition();
    assert_eq!(e.article_count, 9);
    assert_eq!(
        e.stories.len(),
        6,
        "{:#?}",
        e.stories.iter().map(|s| &s.headline).collect::<Vec<_>>()
    );
    let talks = e
        .stories
        .iter()
        .find(|s| s.headline == "Russia and Ukraine hold fresh talks by video link")
        .expect("the talks story");
    // The seed-format report names no publisher: it is counted, not
    // credited to its file's name.
    assert_eq!(talks.sources, ["World Wire"]);
    assert_eq!(talks.also_reported_by.len(), 1);
    assert_eq!(talks.also_reported_by[0].source, "");
    // Three events reported twice (talks, Shenzhen, the TV protest); the
    // rest once.
    let twice: Vec<&str> = e
        .stories
        .iter()
        .filter(|s| s.article_ids.len() == 2)
        .map(|s| s.headline.as_str())
        .collect();
    assert_eq!(twice.len(), 3, "{twice:?}");
    assert!(e.stories.iter().all(|s| s.article_ids.len() <= 2));
}

#[test]
fn text_rendering_snapshot() {
    let r = renderer().render(&edition(), &reader()).unwrap();
    insta::assert_snapshot!("subject", r.subject);
    insta::assert_snapshot!("text", r.text);
}

#[test]
fn html_rendering_snapshot() {
    let r = renderer().render(&edition(), &reader()).unwrap();
    insta::assert_snapshot!("html", r.html);
}

#[test]
fn html_parses_without_errors_in_an_html5_parser() {
    let r = renderer().render(&edition(), &reader()).unwrap();
    let doc = scraper::Html::parse_document(&r.html);
    assert!(
        doc.errors.is_empty(),
        "HTML5 parse errors: {:?}",
        doc.errors
    );
    let sel = scraper::Selector::parse("a[href=\"https://digest.example.com/unsubscribe/TOKEN\"]")
        .unwrap();
    assert_eq!(doc.select(&sel).count(), 1, "one unsubscribe link");
    let tables = scraper::Selector::parse("table[role=presentation][width=\"600\"]").unwrap();
    assert_eq!(doc.select(&tables).count(), 1, "a 600 px layout table");
}

#[test]
fn a_story_of_many_reports_names_five_and_counts_the_rest() {
    let mut e = edition();
    let story = &mut e.stories[0];
    let template = story.also_reported_by[0].clone();
    story.also_reported_by = (1..=12)
        .map(|i| {
            let mut r = template.clone();
            r.source = format!("Outlet {i}");
            r
        })
        .collect();
    let r = renderer().render(&e, &reader()).unwrap();
    let text = r.text.replace("\n   ", " ");
    assert!(
        text.contains(
            "Also reported by: Outlet 1, Outlet 2, Outlet 3, Outlet 4, Outlet 5 and 7 more"
        ),
        "{text}"
    );
    assert!(!r.text.contains("Outlet 6") && !r.html.contains("Outlet 6"));
    assert!(r.html.contains("Outlet 5 and 7 more"), "{}", r.html);
}

#[test]
fn thirty_stories_stay_under_gmails_clipping_limit() {
    let mut e = edition();
    let template = e.stories[0].clone();
    e.stories = (1..=30)
        .map(|i| {
            let mut s = template.clone();
            s.rank = i;
            s.full = i <= 30;
            s.headline = format!("{} (story {i})", template.headline);
            s.url = Some(format!(
                "https://news.example.com/world/2022/03/14/a-rather-long-url-slug-for-story-{i}"
            ));
            s
        })
        .collect();
    let r = renderer().render(&e, &reader()).unwrap();
    assert!(
        r.html.len() < 102 * 1024,
        "{} bytes: Gmail clips messages over 102 KB",
        r.html.len()
    );
}

/// Renders `html` in headless Chromium and returns the screenshot's pixels (RGBA).
fn screenshot(html: &Path, png: &Path, dark: bool) -> (u32, u32, Vec<u8>) {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args(CHROMIUM_FLAGS)
        .args(["--hide-scrollbars", "--window-size=700,1400"]);
    if dark {
        cmd.args([
            "--force-dark-mode",
            "--blink-settings=preferredColorScheme=0",
        ]);
    }
    let status = cmd
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        png.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let rgba: Vec<u8> = match info.color_type {
        png::ColorType::Rgba => buf,
        png::ColorType::Rgb => buf
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

fn luma(p: &[u8]) -> f32 {
    0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32
}

#[test]
fn html_renders_in_a_real_browser_in_light_and_dark_mode() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("digest.html");
    std::fs::write(
        &html,
        renderer().render(&edition(), &reader()).unwrap().html,
    )
    .unwrap();
    let keep = std::env::var_os("DIGEST_SCREENSHOT_DIR").map(PathBuf::from);
    for dark in [false, true] {
        let png = keep
            .clone()
            .unwrap_or_else(|| dir.path().to_path_buf())
            .join(if dark { "dark.png" } else { "light.png" });
        let (w, h, px) = screenshot(&html, &png, dark);
        assert_eq!((w, h), (700, 1400));
        let pixels: Vec<&[u8]> = px.chunks(4).collect();
        let background = luma(pixels[0]);
        // Text is drawn: plenty of pixels differ from the page background.
        let ink = pixels
            .iter()
            .filter(|p| (luma(p) - background).abs() > 60.0)
            .count();
        assert!(
            ink > pixels.len() / 100,
            "screenshot looks blank: {ink} ink pixels"
        );
        if dark {
            assert!(
                background < 60.0,
                "dark mode background is dark (luma {background})"
            );
        } else {
            assert!(
                background > 200.0,
                "light mode background is light (luma {background})"
            );
        }
        // The card in the middle of the page matches the mode.
        let card = luma(pixels[(40 * w + w / 2) as usize]);
        assert!(
            if dark { card < 60.0 } else { card > 200.0 },
            "card luma {card} (dark: {dark})"
        );
    }
}
