"""Tests of the event contracts (a package, so pytest does not shadow `contracts`)."""
