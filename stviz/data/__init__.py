"""Data files stviz ships (class names of the models it names); see SOURCES.md."""
