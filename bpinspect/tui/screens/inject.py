"""The inject dialog: set a blob's top diff from a spec, validated before it is applied."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label, Static

from bpinspect.errors import BpinspectError
from bpinspect.session.diffspec import parse_spec

if TYPE_CHECKING:
    from bpinspect.tui.app import BpinspectApp

SPEC_HELP = ("onehot:281 (class 281 of every item)  onehot:281@0 (item 0 only)  ones  zeros  "
             "const:0.5  randn:seed=0,scale=1  npy:FILE.npy")


class SpecValidator(Validator):
    """A diff spec as the session parses it (never evaluated as code)."""

    def validate(self, value: str) -> ValidationResult:
        try:
            parse_spec(value.strip())
        except BpinspectError as exc:
            return self.failure(str(exc))
        return self.success()


class BlobValidator(Validator):
    def __init__(self, blobs: Sequence[str]) -> None:
        super().__init__()
        self.blobs = set(blobs)

    def validate(self, value: str) -> ValidationResult:
        if value.strip() in self.blobs:
            return self.success()
        return self.failure(f"no blob named {value.strip()!r}")


class InjectDialog(ModalScreen[None]):
    """Blob and spec; enter injects (backward then starts at the blob's producer)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "cancel", id="inject-cancel", tooltip="Close, change nothing"),
    ]

    def __init__(self, blobs: Sequence[str], default_blob: str = "") -> None:
        super().__init__()
        self.blobs = list(blobs)
        self.default_blob = default_blob

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text("Inject a top diff", style="bold"), classes="dialog-title")
            yield Static("Sets the blob's diff when backward begins, as pycaffe's "
                         "net.backward(BLOB=...): backward then starts at the layer that "
                         "produces the blob. If backward had begun, the pass rewinds to its "
                         "start.", classes="dialog-text")
            yield Label("blob")
            yield Input(self.default_blob, id="inject-blob", placeholder="fc8",
                        suggester=SuggestFromList(self.blobs, case_sensitive=True),
                        validators=[BlobValidator(self.blobs)])
            yield Label("spec")
            yield Input(id="inject-spec", placeholder="onehot:281", validators=[SpecValidator()])
            yield Static(SPEC_HELP, classes="dialog-help")
            yield Static("", id="inject-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Inject", variant="primary", id="inject-ok")
                yield Button("Remove injection", id="inject-clear")
                yield Button("Cancel", id="inject-cancel")

    def on_mount(self) -> None:
        target = "#inject-spec" if self.default_blob else "#inject-blob"
        self.query_one(target, Input).focus()

    def show_error(self, message: str) -> None:
        self.query_one("#inject-error", Static).update(message)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#inject-ok")
    def submit(self) -> None:
        """Validate both fields; then the session worker injects (shape errors come back
        here)."""
        blob_input = self.query_one("#inject-blob", Input)
        spec_input = self.query_one("#inject-spec", Input)
        for field in (blob_input, spec_input):
            result = field.validate(field.value)
            if result is not None and not result.is_valid:
                self.show_error(f"{field.id and field.id.removeprefix('inject-')}: "
                                f"{'; '.join(result.failure_descriptions)}")
                field.focus()
                return
        self._send(blob_input.value.strip(), spec_input.value.strip())

    @on(Button.Pressed, "#inject-clear")
    def clear(self) -> None:
        blob_input = self.query_one("#inject-blob", Input)
        result = blob_input.validate(blob_input.value)
        if result is not None and not result.is_valid:
            self.show_error("; ".join(result.failure_descriptions))
            return
        self._send(blob_input.value.strip(), "")

    @on(Button.Pressed, "#inject-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    def _send(self, blob: str, spec: str) -> None:
        from bpinspect.tui.app import Command

        app: BpinspectApp = self.app  # type: ignore[assignment]
        self.show_error("")
        label = f"inject {blob}={spec}" if spec else f"remove the injection at {blob}"
        app.submit(Command("inject", label, {"blob": blob, "spec": spec,
                                             "done": self._done}, on_error=self.show_error))

    def _done(self) -> None:
        if self.is_attached and self.app.screen is self:
            self.dismiss(None)
