"""A public Space under load: chat beside a batch, a SIGKILL under load, and a soak."""
