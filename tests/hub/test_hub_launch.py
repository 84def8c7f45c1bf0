"""The hub's launcher refuses bad arguments before it starts anything
(hub/launch.py); fast, no hub, browser or node needed."""

import pytest


def test_a_folder_without_nbgrader_config_is_refused(tmp_path, hub_launch):
    with pytest.raises(ValueError, match=r"course: expected a folder with nbgrader_config\.py, "
                                         r"received '.*empty'"):
        hub_launch.Hub(tmp_path / "empty", tmp_path / "runtime")
    assert not (tmp_path / "runtime").exists()


@pytest.mark.parametrize("students, message", [
    (["Alice"], r"students: expected lower-case letters, digits, - or _, received 'Alice'"),
    (["al ice"], r"students: expected lower-case letters, digits, - or _, received 'al ice'"),
    (["alice", "alice"], r"students: expected distinct names other than the instructor's "
                         r"\('instructor'\), received \['alice', 'alice'\]"),
    (["instructor"], r"received \['instructor'\]"),
    ([], r"received \[\]"),
])
def test_bad_user_names_are_refused(tmp_path, hub_launch, students, message):
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(ValueError, match=message):
        hub_launch.Hub(course, tmp_path / "runtime", students)
    assert not (tmp_path / "runtime").exists()

