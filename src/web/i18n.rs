//! The viewer app's words in English and Korean (Kakao Pay and Naver Pay buyers are
//! Korean). One `Texts` struct with a field per phrase and one static per language, so a
//! phrase missing in either language, or a template naming one that does not exist, does
//! not compile. The language is the `lang` cookie (the switch in the page) or else the
//! best of `Accept-Language`, else English.

use actix_web::HttpRequest;

pub const LANG_COOKIE: &str = "cinegate_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ko,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::En => &EN,
            Lang::Ko => &KO,
        }
    }

    /// The page's language for `req`.
    pub fn of(req: &HttpRequest) -> Lang {
        if let Some(lang) = req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
            return lang;
        }
        req.headers()
            .get(actix_web::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(from_accept_language)
            .unwrap_or(Lang::En)
    }
}

/// The supported language with the highest weight in an `Accept-Language` value (RFC 9110
/// §12.5.4: `ko-KR,ko;q=0.9,en;q=0.8`); the earlier one on a tie; English if none.
pub fn from_accept_language(header: &str) -> Lang {
    let mut best: Option<(f32, Lang)> = None;
    for item in header.split(',') {
        let mut parts = item.trim().split(';');
        let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q=").map(str::to_string))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let Some(lang) = Lang::parse(primary) else {
            continue;
        };
        if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, lang));
        }
    }
    best.map_or(Lang::En, |(_, l)| l)
}

/// Every phrase of the viewer app. Add a field here and in both statics.
pub struct Texts {
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub other_lang_name: &'static str,
    pub skip: &'static str,
    pub nav_films: &'static str,
    pub nav_account: &'static str,
    pub sign_in: &'static str,
    pub sign_out: &'static str,
    pub catalogue_title: &'static str,
    pub continue_watching: &'static str,
    pub my_films: &'static str,
    pub all_films: &'static str,
    pub no_films: &'static str,
    pub watched: &'static str,
    pub owned: &'static str,
    pub play: &'static str,
    /// Around the preview's percentage: "The first " 10 "% is free".
    pub free_preview_before: &'static str,
    pub free_preview_after: &'static str,
    pub price: &'static str,
    pub duration: &'static str,
    pub supporters: &'static str,
    pub comments: &'static str,
    pub sign_in_to_watch: &'static str,
    pub sign_in_title: &'static str,
    pub sign_in_with: &'static str,
    pub sign_in_link_title: &'static str,
    pub sign_in_link_help: &'static str,
    pub link_token: &'static str,
    pub not_found_title: &'static str,
    pub back_to_films: &'static str,
}

pub static EN: Texts = Texts {
    lang: "en",
    other_lang: "ko",
    other_lang_name: "한국어",
    skip: "Skip to content",
    nav_films: "Films",
    nav_account: "Account",
    sign_in: "Sign in",
    sign_out: "Sign out",
    catalogue_title: "Films",
    continue_watching: "Continue watching",
    my_films: "My films",
    all_films: "All films",
    no_films: "No films yet.",
    watched: "watched",
    owned: "Yours",
    play: "Play",
    free_preview_before: "The first ",
    free_preview_after: "% is free",
    price: "Price",
    duration: "Duration",
    supporters: "supporters",
    comments: "comments",
    sign_in_to_watch: "Sign in to watch",
    sign_in_title: "Sign in",
    sign_in_with: "Continue with",
    sign_in_link_title: "Sign in with a one-time link",
    sign_in_link_help: "Paste the token from a sign-in link, or open the link itself.",
    link_token: "Link token",
    not_found_title: "Not found",
    back_to_films: "Back to the films",
};

pub static KO: Texts = Texts {
    lang: "ko",
    other_lang: "en",
    other_lang_name: "English",
    skip: "본문으로 건너뛰기",
    nav_films: "영화",
    nav_account: "계정",
    sign_in: "로그인",
    sign_out: "로그아웃",
    catalogue_title: "영화",
    continue_watching: "이어서 보기",
    my_films: "내 영화",
    all_films: "전체 영화",
    no_films: "아직 영화가 없습니다.",
    watched: "시청",
    owned: "구매함",
    play: "재생",
    free_preview_before: "처음 ",
    free_preview_after: "%는 무료입니다",
    price: "가격",
    duration: "상영 시간",
    supporters: "명 후원",
    comments: "개 댓글",
    sign_in_to_watch: "로그인하고 시청하기",
    sign_in_title: "로그인",
    sign_in_with: "다음으로 계속",
    sign_in_link_title: "일회용 링크로 로그인",
    sign_in_link_help: "로그인 링크의 토큰을 붙여 넣거나 링크를 직접 여세요.",
    link_token: "링크 토큰",
    not_found_title: "찾을 수 없음",
    back_to_films: "영화 목록으로",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_heaviest_supported_language() {
        assert_eq!(from_accept_language("ko-KR,ko;q=0.9,en-US;q=0.8"), Lang::Ko);
        assert_eq!(from_accept_language("en-US,en;q=0.9,ko;q=0.8"), Lang::En);
        assert_eq!(from_accept_language("fr-FR,ko;q=0.5"), Lang::Ko);
        assert_eq!(from_accept_language("fr-FR,de"), Lang::En);
        assert_eq!(from_accept_language("ko;q=0,en;q=0.1"), Lang::En);
        assert_eq!(from_accept_language(""), Lang::En);
    }
}
