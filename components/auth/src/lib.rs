//! TODO(helper): auth
