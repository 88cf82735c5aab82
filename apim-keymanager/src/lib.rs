//! apim-keymanager (skeleton).
