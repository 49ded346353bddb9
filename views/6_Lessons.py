"""Lessons: the challenge's path, one change per step, each step one click from the editor and the Train form."""

from mnistlab.ui import lessons

lessons.page()
