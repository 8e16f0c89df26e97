"""Reference solutions of the lessons' exercises, written out as a student would (tests grade them); none imports
the package's own answers, which the graders refuse."""
