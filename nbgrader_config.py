"""nbgrader configuration for the course.

The hand-edited source notebooks live in solutions/, the generated student
versions in exercises/. Everything produced while grading (submissions,
autograded copies, feedback, the sqlite gradebook) lives under grading/,
which git ignores.
"""

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = "rnn-course"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "grading/submitted"
c.CourseDirectory.autograded_directory = "grading/autograded"
c.CourseDirectory.feedback_directory = "grading/feedback"
c.CourseDirectory.solution_directory = "grading/solution"
c.CourseDirectory.db_url = "sqlite:///grading/gradebook.db"

# nbgrader 0.9 reads the execution time limit from Execute (the old
# ExecutePreprocessor.timeout key is ignored).
c.Execute.timeout = 120
