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
    // The player, its paywall and checkout (web/viewer/watch.rs).
    pub watch_preview_note: &'static str,
    pub coverage_before: &'static str,
    pub coverage_after: &'static str,
    pub session_ended: &'static str,
    pub sign_in_again: &'static str,
    pub paywall_title: &'static str,
    pub paywall_text: &'static str,
    pub pay_with: &'static str,
    pub no_providers: &'static str,
    pub not_for_sale: &'static str,
    pub replay_preview: &'static str,
    pub payment_paid: &'static str,
    pub payment_pending: &'static str,
    pub payment_cancelled: &'static str,
    pub payment_failed: &'static str,
    pub no_longer_yours: &'static str,
    pub playback_failed: &'static str,
    pub no_hls: &'static str,
    pub back_to_film: &'static str,
    pub provider_dev: &'static str,
    pub provider_paypal: &'static str,
    pub provider_kakaopay: &'static str,
    pub provider_naverpay: &'static str,
    // Comments and support panel, and the account page (web/viewer/{social,account}).
    pub social_title: &'static str,
    pub social_sign_in: &'static str,
    pub social_locked_before: &'static str,
    pub social_locked_after: &'static str,
    pub social_watched_label: &'static str,
    pub social_watched: &'static str,
    pub social_more_before: &'static str,
    pub social_more_after: &'static str,
    pub social_pace: &'static str,
    pub support_button: &'static str,
    pub supported: &'static str,
    pub support_thanks: &'static str,
    pub support_message: &'static str,
    pub tip_optional: &'static str,
    pub tip_amount: &'static str,
    pub tip_currency: &'static str,
    pub tip_provider: &'static str,
    pub tip_bounds: &'static str,
    pub comment_write: &'static str,
    pub comment_post: &'static str,
    pub comment_save: &'static str,
    pub cancel: &'static str,
    pub comment_edit: &'static str,
    pub comment_edited: &'static str,
    pub comment_held: &'static str,
    pub comment_delete: &'static str,
    pub comment_delete_confirm: &'static str,
    pub comment_deleted: &'static str,
    pub comment_report: &'static str,
    pub comment_report_confirm: &'static str,
    pub comment_reported: &'static str,
    pub comments_newest: &'static str,
    pub comments_older: &'static str,
    pub no_comments: &'static str,
    pub account_title: &'static str,
    pub account_providers: &'static str,
    pub account_linked_since: &'static str,
    pub account_link: &'static str,
    pub account_unlink: &'static str,
    pub account_unlink_confirm: &'static str,
    pub account_no_providers: &'static str,
    pub account_purchases: &'static str,
    pub account_no_purchases: &'static str,
    pub account_progress: &'static str,
    pub account_no_progress: &'static str,
    pub account_unlocked: &'static str,
    pub account_sessions: &'static str,
    pub account_sign_out_everywhere: &'static str,
    pub account_sign_out_everywhere_confirm: &'static str,
    pub account_delete_title: &'static str,
    pub account_delete_help: &'static str,
    pub account_delete: &'static str,
    pub account_delete_confirm: &'static str,
    // Notification preferences on the account page (`/account/notifications`).
    pub account_notifications: &'static str,
    pub account_notifications_help: &'static str,
    pub account_new_films_email: &'static str,
    pub account_new_films_push: &'static str,
    pub account_mail_language: &'static str,
    pub account_save: &'static str,
    pub account_saved: &'static str,
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
    // The player, its paywall and checkout (web/viewer/watch.rs).
    watch_preview_note: "You are watching the free preview.",
    coverage_before: "Counted so far: ",
    coverage_after: "% of the film",
    session_ended: "Your session has ended. Playback goes on; sign in again to buy or to see your progress.",
    sign_in_again: "Sign in again",
    paywall_title: "The free preview ends here",
    paywall_text: "Buy the film to watch it to the end.",
    pay_with: "Pay with",
    no_providers: "No payment provider accepts this film's currency yet.",
    not_for_sale: "This film is not for sale.",
    replay_preview: "Watch the preview again",
    payment_paid: "Payment complete: the whole film is yours.",
    payment_pending: "The payment provider has not confirmed the payment yet. The film unlocks as soon as it does: reload this page in a moment.",
    payment_cancelled: "The payment was cancelled. Nothing was charged.",
    payment_failed: "The payment did not go through. Nothing was charged; you can try again.",
    no_longer_yours: "This film is no longer yours: the purchase was refunded. Buy it again to keep watching.",
    playback_failed: "The film could not be played. Reload the page to try again.",
    no_hls: "This browser cannot play this film.",
    back_to_film: "Back to the film page",
    provider_dev: "Test payment (dev)",
    provider_paypal: "PayPal",
    provider_kakaopay: "Kakao Pay",
    provider_naverpay: "Naver Pay",
    // Comments and support panel, and the account page.
    social_title: "Comments and support",
    social_sign_in: "Sign in and watch the film to join the comments.",
    social_locked_before: "Comments and support open once you have watched ",
    social_locked_after: "% of the film.",
    social_watched_label: "Watched so far",
    social_watched: "watched so far",
    social_more_before: "Watch ",
    social_more_after: " more to unlock them.",
    social_pace: "Keep watching at a normal pace to unlock them.",
    support_button: "Support this film",
    supported: "You support this film — add a tip?",
    support_thanks: "Thank you for your support!",
    support_message: "Message (optional)",
    tip_optional: "Tip (optional), paid through a provider",
    tip_amount: "Amount",
    tip_currency: "Currency",
    tip_provider: "Pay with",
    tip_bounds: "Tips between",
    comment_write: "Write a comment",
    comment_post: "Post",
    comment_save: "Save",
    cancel: "Cancel",
    comment_edit: "Edit",
    comment_edited: "edited",
    comment_held: "only you can see this until a moderator reviews it",
    comment_delete: "Delete",
    comment_delete_confirm: "Delete this comment? Its text will be gone.",
    comment_deleted: "This comment was deleted.",
    comment_report: "Report",
    comment_report_confirm: "Report this comment to the moderators?",
    comment_reported: "Reported — thank you",
    comments_newest: "Newest comments",
    comments_older: "Older comments",
    no_comments: "No comments yet — be the first.",
    account_title: "Your account",
    account_providers: "Sign-in providers",
    account_linked_since: "linked",
    account_link: "Link",
    account_unlink: "Unlink",
    account_unlink_confirm: "Unlink this provider? You will no longer be able to sign in with it.",
    account_no_providers: "No provider is linked; you sign in with one-time links.",
    account_purchases: "Purchases",
    account_no_purchases: "No purchases yet.",
    account_progress: "Watching",
    account_no_progress: "Nothing watched yet.",
    account_unlocked: "comments open",
    account_sessions: "Sessions",
    account_sign_out_everywhere: "Sign out everywhere",
    account_sign_out_everywhere_confirm: "Sign out on every device and app, this one included?",
    account_delete_title: "Delete the account",
    account_delete_help: "Your sign-ins, progress and profile go; your comments stay, without your name. Purchases stay in the seller's books.",
    account_delete: "Delete my account",
    account_delete_confirm: "Delete your account for good? This cannot be undone.",
    account_notifications: "Notifications",
    account_notifications_help: "Receipts and refund notices are always sent.",
    account_new_films_email: "E-mail me when a new film is published",
    account_new_films_push: "Notify my devices when a new film is published",
    account_mail_language: "Language of e-mail and notifications",
    account_save: "Save",
    account_saved: "Saved.",
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
    // The player, its paywall and checkout (web/viewer/watch.rs).
    watch_preview_note: "무료 미리보기를 보고 있습니다.",
    coverage_before: "지금까지 집계된 시청: ",
    coverage_after: "%",
    session_ended: "세션이 끝났습니다. 재생은 계속됩니다. 구매하거나 진행 상황을 보려면 다시 로그인하세요.",
    sign_in_again: "다시 로그인",
    paywall_title: "무료 미리보기가 끝났습니다",
    paywall_text: "영화를 구매하고 끝까지 보세요.",
    pay_with: "결제 수단",
    no_providers: "이 영화의 통화를 받는 결제 수단이 아직 없습니다.",
    not_for_sale: "이 영화는 판매하지 않습니다.",
    replay_preview: "미리보기 다시 보기",
    payment_paid: "결제가 완료되었습니다. 이제 영화 전체를 볼 수 있습니다.",
    payment_pending: "결제 대행사가 아직 결제를 확인하지 않았습니다. 확인되는 즉시 영화가 열립니다. 잠시 후 이 페이지를 새로 고치세요.",
    payment_cancelled: "결제가 취소되었습니다. 청구된 금액은 없습니다.",
    payment_failed: "결제가 완료되지 않았습니다. 청구된 금액은 없으며 다시 시도할 수 있습니다.",
    no_longer_yours: "이 영화는 더 이상 내 영화가 아닙니다. 구매가 환불되었습니다. 계속 보려면 다시 구매하세요.",
    playback_failed: "영화를 재생할 수 없습니다. 페이지를 새로 고쳐 다시 시도하세요.",
    no_hls: "이 브라우저에서는 이 영화를 재생할 수 없습니다.",
    back_to_film: "영화 페이지로",
    provider_dev: "테스트 결제 (dev)",
    provider_paypal: "PayPal",
    provider_kakaopay: "카카오페이",
    provider_naverpay: "네이버페이",
    // Comments and support panel, and the account page.
    social_title: "댓글과 후원",
    social_sign_in: "로그인하고 영화를 보면 댓글에 참여할 수 있습니다.",
    social_locked_before: "댓글과 후원은 영화를 ",
    social_locked_after: "% 시청하면 열립니다.",
    social_watched_label: "지금까지 시청한 비율",
    social_watched: "시청함",
    social_more_before: "앞으로 ",
    social_more_after: " 더 보면 열립니다.",
    social_pace: "보통 속도로 계속 시청하면 열립니다.",
    support_button: "이 영화 후원하기",
    supported: "이 영화를 후원하고 있습니다 — 팁을 더할까요?",
    support_thanks: "후원해 주셔서 감사합니다!",
    support_message: "메시지 (선택)",
    tip_optional: "팁 (선택) — 결제 서비스로 결제",
    tip_amount: "금액",
    tip_currency: "통화",
    tip_provider: "결제 수단",
    tip_bounds: "팁 범위:",
    comment_write: "댓글 쓰기",
    comment_post: "등록",
    comment_save: "저장",
    cancel: "취소",
    comment_edit: "수정",
    comment_edited: "수정됨",
    comment_held: "검토 전까지 나만 볼 수 있음",
    comment_delete: "삭제",
    comment_delete_confirm: "이 댓글을 삭제할까요? 내용은 사라집니다.",
    comment_deleted: "삭제된 댓글입니다.",
    comment_report: "신고",
    comment_report_confirm: "이 댓글을 관리자에게 신고할까요?",
    comment_reported: "신고했습니다 — 감사합니다",
    comments_newest: "최신 댓글",
    comments_older: "이전 댓글",
    no_comments: "아직 댓글이 없습니다 — 첫 댓글을 남겨 보세요.",
    account_title: "내 계정",
    account_providers: "로그인 서비스",
    account_linked_since: "연결일",
    account_link: "연결",
    account_unlink: "연결 해제",
    account_unlink_confirm:
        "이 서비스의 연결을 해제할까요? 더 이상 이 서비스로 로그인할 수 없습니다.",
    account_no_providers: "연결된 서비스가 없습니다. 일회용 링크로 로그인합니다.",
    account_purchases: "구매 내역",
    account_no_purchases: "아직 구매한 영화가 없습니다.",
    account_progress: "시청 기록",
    account_no_progress: "아직 시청한 영화가 없습니다.",
    account_unlocked: "댓글 열림",
    account_sessions: "세션",
    account_sign_out_everywhere: "모든 기기에서 로그아웃",
    account_sign_out_everywhere_confirm: "이 기기를 포함해 모든 기기와 앱에서 로그아웃할까요?",
    account_delete_title: "계정 삭제",
    account_delete_help:
        "로그인 정보, 시청 기록, 프로필이 삭제되고 댓글은 이름 없이 남습니다. 구매 기록은 판매자 장부에 남습니다.",
    account_delete: "내 계정 삭제",
    account_delete_confirm: "계정을 영구히 삭제할까요? 되돌릴 수 없습니다.",
    account_notifications: "알림",
    account_notifications_help: "영수증과 환불 안내는 항상 발송됩니다.",
    account_new_films_email: "새 영화가 공개되면 이메일로 알림 받기",
    account_new_films_push: "새 영화가 공개되면 기기로 알림 받기",
    account_mail_language: "이메일과 알림의 언어",
    account_save: "저장",
    account_saved: "저장되었습니다.",
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
