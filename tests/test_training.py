"""The training recipes that regenerate the shipped weights learn: short runs lower their losses."""

from dataclasses import replace

import numpy as np

from itd.models.toy import load_teacher
from itd.train_digits import JudgeRecipe, StudentRecipe, TeacherRecipe, train_judge, train_student, train_teacher


def _drop(losses, n=20):
    return np.mean(losses[-n:]) / np.mean(losses[:n])


def test_teacher_loss_falls():
    _, losses = train_teacher(replace(TeacherRecipe(), steps=150, batch_size=64), log_every=0)
    assert _drop(losses) < 0.5


def test_student_distillation_loss_falls(schedule):
    _, losses = train_student(load_teacher(schedule), replace(StudentRecipe(), steps=150, batch_size=64), log_every=0)
    assert _drop(losses) < 0.8


def test_judge_loss_falls():
    _, losses = train_judge(replace(JudgeRecipe(), steps=150, batch_size=64), log_every=0)
    assert _drop(losses) < 0.3
