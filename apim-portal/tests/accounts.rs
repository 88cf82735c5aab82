//! Accounts on the management REST APIs (issue 18 items 5, 11, 23): a new account with a
//! deleted user's name inherits nothing, Basic password guessing is locked out, user names are
//! unique regardless of case.

mod common;

use std::time::Duration;

use apim_core::model::Application;
use apim_core::store::{PasswordPolicy, Store};
use common::*;
use http::StatusCode;
use serde_json::json;

async fn signup(app: &axum::Router, user: (&str, &str)) -> Reply {
    send(
        app,
        "POST",
        &format!("{DEV}/self-signup"),
        None,
        Some(json!({"username": user.0, "password": user.1})),
    )
    .await
}

on_both_backends!(
    a_new_account_with_a_deleted_users_name_inherits_nothing,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        let app = app(store.clone());
        let erin = ("erin", "erin-pass-123");
        assert_eq!(signup(&app, erin).await.status, StatusCode::CREATED);
        let r = send(
            &app,
            "POST",
            &format!("{DEV}/applications"),
            Some(erin),
            Some(json!({"name": "ErinApp"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let app_id = r.body["applicationId"].as_str().unwrap().to_owned();
        let r = send(
            &app,
            "POST",
            &format!("{DEV}/applications/{app_id}/generate-keys"),
            Some(erin),
            Some(
                json!({"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"]}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let km = r.body["keyMappingId"].as_str().unwrap().to_owned();
        let consumer_key = r.body["consumerKey"].as_str().unwrap().to_owned();

        let r = send(
            &app,
            "DELETE",
            &format!("{ADM}/users/erin"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        // the account's application and its OAuth client went with it
        assert!(store
            .get_oauth_client(&consumer_key)
            .await
            .unwrap()
            .is_none());

        let new_erin = ("erin", "another-pass-456");
        assert_eq!(signup(&app, new_erin).await.status, StatusCode::CREATED);
        let r = send(
            &app,
            "GET",
            &format!("{DEV}/applications"),
            Some(new_erin),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["count"], 0, "{:?}", r.body);
        let r = send(
            &app,
            "GET",
            &format!("{DEV}/applications/{app_id}"),
            Some(new_erin),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = send(
            &app,
            "POST",
            &format!("{DEV}/applications/{app_id}/oauth-keys/{km}/regenerate-secret"),
            Some(new_erin),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    }
);

on_both_backends!(
    an_application_left_by_an_earlier_account_is_not_inherited,
    |store: Store| async move {
        // an application whose owner account is gone but the application stayed (as the previous
        // version left them on deletion): bound to that account's id, not to the name
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        let left: Application = serde_json::from_value(json!({"name": "Left"})).unwrap();
        let left = store.create_application(left, "ivan").await.unwrap();
        let app = app(store.clone());
        let ivan = ("ivan", "ivan-pass-123");
        assert_eq!(signup(&app, ivan).await.status, StatusCode::CREATED);
        let r = send(
            &app,
            "GET",
            &format!("{DEV}/applications"),
            Some(ivan),
            None,
        )
        .await;
        assert_eq!(r.body["count"], 0, "{:?}", r.body);
        let id = &left.application_id;
        let r = send(
            &app,
            "GET",
            &format!("{DEV}/applications/{id}"),
            Some(ivan),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = send(
            &app,
            "POST",
            &format!("{DEV}/applications/{id}/generate-keys"),
            Some(ivan),
            Some(
                json!({"keyType": "PRODUCTION", "grantTypesToBeSupported": ["client_credentials"]}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
);

on_both_backends!(
    basic_password_guessing_is_locked_out,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy {
                free_failures: 3,
                base_lockout: Duration::from_secs(30),
                ..PasswordPolicy::for_tests()
            })
            .unwrap();
        let app = app(store.clone());
        let jack = ("jack", "jack-pass-123");
        assert_eq!(signup(&app, jack).await.status, StatusCode::CREATED);
        for _ in 0..3 {
            let r = send(
                &app,
                "GET",
                &format!("{DEV}/applications"),
                Some(("jack", "guess-123")),
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let hashed = store.password_stats().hashed;
        let r = send(
            &app,
            "GET",
            &format!("{DEV}/applications"),
            Some(jack),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
        assert_eq!(r.body["code"], 429);
        assert_eq!(
            store.password_stats().hashed,
            hashed,
            "refused without hashing"
        );
        // the same name in another case is the same account for the lock-out
        let r = send(
            &app,
            "GET",
            &format!("{DEV}/applications"),
            Some(("JACK", "guess-123")),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    }
);

on_both_backends!(
    user_names_differing_only_by_case_are_refused,
    |store: Store| async move {
        store
            .set_password_policy(PasswordPolicy::for_tests())
            .unwrap();
        let app = app(store.clone());
        assert_eq!(
            signup(&app, ("kate", "kate-pass-123")).await.status,
            StatusCode::CREATED
        );
        let r = signup(&app, ("Kate", "kate-pass-456")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        let r = send(
            &app,
            "POST",
            &format!("{ADM}/users"),
            Some(ADMIN),
            Some(json!({"username": "KATE", "password": "kate-pass-789", "roles": ["subscriber"]})),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        let r = send(
            &app,
            "POST",
            &format!("{ADM}/users"),
            Some(ADMIN),
            Some(
                json!({"username": "Admin", "password": "admin-pass-789", "roles": ["subscriber"]}),
            ),
        )
        .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    }
);
