"""Errors a user can act on: who, which file, what is wrong."""

from __future__ import annotations


class CtithError(Exception):
    """Base class; the CLI prints these as one line, without a traceback."""


class InputError(CtithError):
    """Bad input for one patient (or one sheet row): names the patient and the file."""

    def __init__(self, message: str, patient: str | None = None, path: str | None = None):
        self.patient = patient
        self.path = path
        prefix = f"patient {patient}: " if patient else ""
        super().__init__(prefix + message)


class IngestError(InputError):
    """An image or mask that cannot be ingested."""


class SheetError(CtithError):
    """Every problem found in the config, sample sheet and clinical table, at once."""

    where = "the input sheets"

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in {self.where}:\n{lines}")


class ConfigError(SheetError):
    """Every problem found in the configuration, at once."""

    where = "the config"
