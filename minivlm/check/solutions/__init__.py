"""Reference solutions of the lessons' exercises, built from the package's own functions (tests grade them)."""
