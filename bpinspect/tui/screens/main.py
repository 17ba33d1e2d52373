"""The main screen: header, layer list, blob panel, internals tabs, status line, footer."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Static, TabbedContent, TabPane, Tabs

from bpinspect.tui import messages as msg
from bpinspect.tui.view_data import (
    INTERNALS_TAB_OF_TYPE,
    INTERNALS_TABS,
    TAB_BATCH,
    TAB_CONCAT,
    TAB_DEPTH,
    TAB_DROPOUT,
    TAB_FLOW,
    TAB_GATES,
    TAB_LRN,
    TAB_POOLING,
    TAB_SALIENCY,
    TAB_SOFTMAX,
    TAB_TRAINING,
    TAB_UNITS,
    UPDATE_ROW,
    HeaderInfo,
    TrainingConditionsState,
    ViewData,
)
from bpinspect.tui.widgets.batch_pane import BatchPane
from bpinspect.tui.widgets.blob_panel import BlobPanel
from bpinspect.tui.widgets.concat_pane import ConcatPane
from bpinspect.tui.widgets.depth_pane import DepthPane
from bpinspect.tui.widgets.dropout_pane import DropoutPane
from bpinspect.tui.widgets.gates_pane import GatesPane
from bpinspect.tui.widgets.gradient_flow import GradientFlow
from bpinspect.tui.widgets.layer_list import HEADING, LEGEND, LayerList
from bpinspect.tui.widgets.lrn_pane import LRNPane
from bpinspect.tui.widgets.notes_line import NotesLine
from bpinspect.tui.widgets.plane_pane import PlanePane
from bpinspect.tui.widgets.pooling_pane import PoolingPane
from bpinspect.tui.widgets.saliency_pane import SaliencyPane
from bpinspect.tui.widgets.session_header import SessionHeader
from bpinspect.tui.widgets.softmax_pane import SoftmaxPane
from bpinspect.tui.widgets.status_line import StatusLine
from bpinspect.tui.widgets.training_pane import TrainingPane
from bpinspect.tui.widgets.units_pane import UnitsPane

if TYPE_CHECKING:
    from bpinspect.tui.app import BpinspectApp

MIN_WIDTH = 100
MIN_HEIGHT = 28

# Actions that need a loaded session.
SESSION_ACTIONS = frozenset({
    "step_forward", "continue", "step_back", "restart", "toggle_breakpoint", "conditions",
    "inject", "export", "export_all", "until_iteration",
})
# Actions of a training session only (hidden from the footer, help and palette otherwise).
TRAINING_ACTIONS = frozenset({"until_iteration"})
TRAINING_LEGEND = ("▶ next step   ● breakpoint\nF/B forward/backward, Δ update:\n"
                   "✓ ran  · to do  – not needed")


class MainScreen(Screen[None]):
    """Everything at once: where the pass is, the selected layer's blobs and internals."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,f10", "step_forward", "step", id="step-forward",
                tooltip="Run the next step (one layer forward or backward)"),
        Binding("c,f5", "continue", "continue", id="continue",
                tooltip="Run to the next breakpoint or the end of the pass"),
        Binding("u", "until_iteration", "until iter", id="until-iteration",
                tooltip="Training: run whole iterations to the start of iteration N"),
        Binding("p", "step_back", "back", id="step-back",
                tooltip="Undo the last step (the recorded state comes back)"),
        Binding("b,f9", "toggle_breakpoint", "break", id="toggle-breakpoint",
                tooltip="Set or clear a breakpoint on the selected layer (both directions)"),
        Binding("B", "conditions", "conditions", id="conditions",
                tooltip="Stop on NaN/Inf, on |x| above a bound, or on a zero diff"),
        Binding("r", "restart", "restart", id="restart",
                tooltip="A new pass: same inputs, weights, injections, breakpoints"),
        Binding("i", "inject", "inject", id="inject",
                tooltip="Set a blob's top diff (onehot:281, ones, const:0.5, npy:FILE ...)"),
        Binding("e", "export", "export", id="export",
                tooltip="Write the selected blob's data and diff, as shown, to .npy"),
        Binding("E", "export_all", "export all", id="export-all",
                tooltip="Write every blob's data and diff at this step to .npy"),
        Binding("l", "toggle_log", "log", id="toggle-log",
                tooltip="Histogram heights: counts or log10(1 + count)"),
        Binding("d", "toggle_depth_kind", "depth data/diff", show=False, id="depth-kind",
                tooltip="The Depth tab: every layer's top data, or diff"),
        Binding("D", "toggle_depth_range", "depth range", show=False, id="depth-range",
                tooltip="The Depth tab: one range for every layer, or each layer's own"),
        Binding("g", "gradient_check", "gradcheck", show=False, id="gradient-check",
                tooltip="Check the selected layer's backward numerically (float64)"),
        Binding("exclamation_mark", "console", "console", show=False, id="console",
                tooltip="Python on the live blobs: net, session, np, blob(name), diff(name)"),
        Binding("N", "notes", "notes", show=False, id="notes",
                tooltip="Every note: legacy input upgraded, seeded weights or input, ..."),
        Binding("m", "toggle_maximize", "zoom", id="toggle-maximize",
                tooltip="Fill the screen with the focused pane (m or escape again: back)"),
        Binding("tab", "cycle_panes", "next pane", show=False, id="next-pane",
                tooltip="Move the focus: layer list, blob table, internals tab"),
        Binding("shift+tab", "cycle_panes(-1)", "previous pane", show=False,
                id="previous-pane", tooltip="Move the focus back"),
        Binding("escape", "interrupt", "stop", show=False, id="interrupt",
                tooltip="Stop a continue after the layer that is running"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | n / F10 | Step: run the next layer forward or backward. |
    | c / F5 | Continue to the next breakpoint or the end (training: max_iter). |
    | u | Training: run to the start of an iteration. |
    | p | Step back. |
    | b / F9 | Toggle a breakpoint on the selected layer. |
    | B | Conditional breakpoints. |
    | r | Restart the pass. |
    | i | Inject a top diff. |
    | e / E | Export the selected blob / every blob. |
    | l | Log histogram. |
    | d | Depth tab: top data or diff across the net. |
    | D | Depth tab: one shared range, or each layer's own. |
    | g | Gradient check of the selected layer (escape cancels). |
    | ! | Python console: blob(name), diff(name) at the step viewed (escape interrupts / closes). |
    | N | Every note of the session (the line over the status line shows the newest). |
    | m | Zoom the focused pane to the whole screen, and back. |
    | tab | Cycle panes: the layers, the blobs, the tab bar (left / right choose a tab), the tab. |
    | escape | Interrupt a continue. |
    """

    HORIZONTAL_BREAKPOINTS = [(0, "-too-narrow"), (MIN_WIDTH, "-narrow"), (150, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-too-short"), (MIN_HEIGHT, "-short"), (40, "-tall")]

    def __init__(self) -> None:
        super().__init__()
        self.header_info: HeaderInfo | None = None
        """The header of the last view (next step's label for the status line)."""
        self.blob_names: list[str] = []
        """Every blob of the net (the inject dialog's suggestions)."""
        self.conditions: tuple[tuple[str, float | None], ...] = ()
        self.log_counts = False
        """Histograms show log10(1 + count)."""
        self.view: ViewData | None = None
        self._shown_tab: str | None = TAB_FLOW  # the tab the last view activated
        self._internals_tab: str | None = None  # the internals tab shown now
        self._binding_state: tuple[bool, bool, bool, bool] | None = None
        self._running_timer: Timer | None = None
        self.training = False
        """The session is a TrainingSession (the training keys, tab and header line)."""
        self.training_conditions: TrainingConditionsState | None = None

    @property
    def bpinspect(self) -> BpinspectApp:
        return self.app  # type: ignore[return-value]

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield SessionHeader(id="header")
        with Horizontal(id="main"):
            with Vertical(id="left") as left:
                left.border_title = "schedule"
                yield Static(HEADING, id="layers-heading")
                yield LayerList(id="layers")
                yield Static(LEGEND, id="layers-legend")
            with Vertical(id="right"):
                panel = BlobPanel(id="blobs")
                panel.border_title = "blobs"
                yield panel
                with TabbedContent(id="tabs", initial=TAB_FLOW):
                    with TabPane("Training", id=TAB_TRAINING):
                        yield TrainingPane(id="training")
                    with TabPane("Batch", id=TAB_BATCH):
                        yield BatchPane(id="batch")
                    with TabPane("LRN scale", id=TAB_LRN):
                        yield LRNPane(id="lrn")
                    with TabPane("Pooling argmax", id=TAB_POOLING):
                        yield PoolingPane(id="pooling")
                    with TabPane("Concat split", id=TAB_CONCAT):
                        yield ConcatPane(id="concat")
                    with TabPane("Dropout mask", id=TAB_DROPOUT):
                        yield DropoutPane(id="dropout")
                    with TabPane("Softmax", id=TAB_SOFTMAX):
                        yield SoftmaxPane(id="softmax")
                    with TabPane("Gates over time", id=TAB_GATES):
                        yield GatesPane(id="gates")
                    with TabPane("Saliency", id=TAB_SALIENCY):
                        yield SaliencyPane(id="saliency")
                    with TabPane("Gradient flow", id=TAB_FLOW):
                        yield GradientFlow(id="flow")
                    with TabPane("Units", id=TAB_UNITS):
                        yield UnitsPane(id="units")
                    with TabPane("Depth", id=TAB_DEPTH):
                        yield DepthPane(id="depth")
        yield Static("", id="too-small")
        yield NotesLine(id="notes")
        yield StatusLine(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        tabs = self.tabs
        for tab in (*INTERNALS_TABS, TAB_TRAINING, TAB_BATCH):
            tabs.hide_tab(tab)
        self.layer_list.focus()
        options = self.bpinspect.options
        if options is not None:
            what = getattr(options, "net", None) or getattr(options, "solver", None)
            self.query_one(SessionHeader).loading_net = str(what)

    def on_resize(self, event: Resize) -> None:
        self.call_after_refresh(self._sync_bins)
        self.query_one("#too-small", Static).update(Text(
            f"bpinspect needs a terminal of at least {MIN_WIDTH}×{MIN_HEIGHT}; this one is "
            f"{event.size.width}×{event.size.height}.\nEnlarge the window or make the font "
            "smaller. q quits.", justify="center"))

    def _sync_bins(self) -> None:
        """One histogram bin per column of the chart (the session bins, the chart draws)."""
        width = self.blob_panel.query_one("#hist-data").content_region.width
        bins = min(max(width, 8), 256)
        if width > 0 and bins != self.bpinspect.request.bins:
            self._request(bins=bins)

    @property
    def layer_list(self) -> LayerList:
        return self.query_one(LayerList)

    @property
    def blob_panel(self) -> BlobPanel:
        return self.query_one(BlobPanel)

    @property
    def tabs(self) -> TabbedContent:
        return self.query_one(TabbedContent)

    @property
    def status(self) -> StatusLine:
        return self.query_one(StatusLine)

    # ------------------------------------------------------------------ bindings
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        app = self.bpinspect
        if action in TRAINING_ACTIONS and not self.training:
            return False  # not a key of this session: out of the footer
        if action in SESSION_ACTIONS:
            if app.session is None:
                return None
            if action in ("step_forward", "continue", "until_iteration") and app.at_end:
                return None
            if action == "step_back" and app.at_start:
                return None
        return True

    def _sync_bindings(self) -> None:
        """Refresh the footer when what is possible changed (a refresh recomposes it)."""
        app = self.bpinspect
        state = (app.session is not None, app.at_end, app.at_start, self.training)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def palette_commands(self) -> Iterable[SystemCommand]:
        """Every key's action for the command palette (ctrl+p)."""
        for binding in self.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.action.startswith("cycle_panes"):
                continue
            if binding.action in TRAINING_ACTIONS and not self.training:
                continue
            keys = binding.key.replace(",", " / ").replace("f10", "F10").replace(
                "f5", "F5").replace("f9", "F9").replace("exclamation_mark", "!")
            yield SystemCommand(f"{binding.description.capitalize()} ({keys})",
                                binding.tooltip, self._palette_action(binding.action))

    def _palette_action(self, action: str) -> Any:
        async def run() -> None:
            await self.run_action(action)
        return run

    # ------------------------------------------------------------------ actions
    def _request(self, **changes: Any) -> None:
        app = self.bpinspect
        app.request = replace(app.request, **changes)
        if app.session is not None:
            from bpinspect.tui.app import Command

            app.submit(Command("refresh", "show"))

    def _submit(self, kind: str, label: str, **args: Any) -> None:
        from bpinspect.tui.app import Command

        self.bpinspect.submit(Command(kind, label, args))

    def action_step_forward(self) -> None:
        nxt = self.header_info.next_label if self.header_info else None
        self._submit("step", f"running {nxt}" if nxt else "step")

    def action_continue(self) -> None:
        total = None
        info = self.header_info
        if info is not None and info.training is not None:
            total = max(info.training.max_iter - info.training.iteration, 1)  # iterations
        elif info is not None:
            total = info.total - info.cursor
        self._submit("continue", "continue (escape stops)", total=total)

    def action_until_iteration(self) -> None:
        """u: ask for an iteration, then run to its start in the worker."""
        from bpinspect.tui.screens.until import UntilDialog

        info = self.header_info.training if self.header_info is not None else None
        if info is None:
            self.status.show("u runs a training session (bpinspect --solver SOLVER)",
                             "warning")
            return

        def run(target: int | None) -> None:
            if target is not None:
                self._submit("until", f"running to iteration {target} (escape stops)",
                             iteration=target, total=max(target - info.iteration, 1))

        self.app.push_screen(UntilDialog(info.iteration, info.max_iter), run)

    def action_step_back(self) -> None:
        self._submit("back", "stepping back")

    def action_restart(self) -> None:
        self._submit("restart", "restarting")

    def action_toggle_breakpoint(self) -> None:
        layer = self.layer_list.highlighted_layer
        if layer is None:
            self.status.show("select a layer first (↑ ↓ in the layer list)", "warning")
            return
        if layer == UPDATE_ROW:
            self.status.show("the update takes no layer breakpoint: B stops on an update "
                             "ratio above a bound, or at an iteration", "warning")
            return
        self._submit("toggle_break", f"breakpoint on {layer}", layer=layer)

    def action_conditions(self) -> None:
        from bpinspect.tui.screens.breakpoints import BreakpointDialog

        def apply(result: dict[str, Any] | None) -> None:
            if result is not None:
                self._submit("conditions", "conditions", **result)

        self.app.push_screen(BreakpointDialog(self.conditions, self.training_conditions), apply)

    def action_inject(self) -> None:
        from bpinspect.tui.screens.inject import InjectDialog

        entry = self.blob_panel.selected
        default = ""
        panel = self.blob_panel.panel
        if entry is not None and entry.param is None:
            default = entry.name
        elif panel is not None and panel.info.tops:
            default = panel.info.tops[0]
        self.app.push_screen(InjectDialog(self.blob_names, default))

    def action_export(self) -> None:
        entry = self.blob_panel.selected
        if entry is None:
            self.status.show("select a blob first (tab to the blob table, ↑ ↓)", "warning")
            return
        kinds = []
        if entry.data is not None:
            kinds.append(("data", entry.data_step))
        if entry.diff is not None:
            kinds.append(("diff", entry.diff_step))
        if not kinds:
            self.status.show(f"{entry.label} has no values yet at this step", "warning")
            return
        self._submit("export", f"exporting {entry.label}", name=entry.name, param=entry.param,
                     kinds=kinds)

    def action_export_all(self) -> None:
        self._submit("export_all", "exporting every blob")

    def action_toggle_log(self) -> None:
        self.log_counts = not self.log_counts
        self.blob_panel.set_log(self.log_counts)
        self.status.show("histograms: " + ("log10(1 + count)" if self.log_counts else "counts"))

    def action_gradient_check(self) -> None:
        layer = self.layer_list.highlighted_layer
        if layer is None:
            self.status.show("select a layer first", "warning")
            return
        self._submit("gradcheck", f"gradient check of {layer} (escape cancels)", layer=layer)

    def action_console(self) -> None:
        """!: the Python console (its inputs run in the session worker)."""
        from bpinspect.tui.screens.console import ConsoleScreen

        if self.bpinspect.session is None:
            self.status.show("the console needs the net: it has not loaded", "warning")
            return
        self.app.push_screen(ConsoleScreen())

    def on_gradient_checked(self, event: msg.GradientChecked) -> None:
        """The check's outcome in a modal screen."""
        from bpinspect.tui.screens.gradcheck import GradCheckScreen

        self.app.push_screen(GradCheckScreen(event.check, event.eps, event.threshold))

    def action_toggle_depth_range(self) -> None:
        per_layer = not self.bpinspect.request.depth_per_layer
        self._request(depth_per_layer=per_layer)
        self.status.show("depth tab: " + ("each layer over its own range" if per_layer
                                          else "every layer over one range"))

    def action_toggle_depth_kind(self) -> None:
        kind = "diff" if self.bpinspect.request.depth_kind == "data" else "data"
        self._request(depth_kind=kind)
        self.status.show(f"depth tab: top {kind}")

    def action_cycle_panes(self, delta: int = 1) -> None:
        # The tab bar too: there left/right choose a tab without a mouse.
        targets: list[Widget] = [self.layer_list, self.blob_panel.table,
                                 self.tabs.query_one(Tabs)]
        pane = self._active_pane_target()
        if pane is not None:
            targets.append(pane)
        focused = self.focused
        index = -1
        for i, t in enumerate(targets):
            if focused is not None and (focused is t or t in focused.ancestors):
                index = i
        targets[(index + delta) % len(targets)].focus()

    def _active_pane_target(self) -> Widget | None:
        active = self.tabs.active
        if not active:
            return None
        pane = self.tabs.get_pane(active)
        for widget in pane.query("*"):
            if widget.focusable:
                return widget
        return None

    def action_interrupt(self) -> None:
        if self.bpinspect.interrupt():
            self.status.show("stopping after the layer that is running …", "warning")
        elif self.maximized is not None:
            self.minimize()
        else:
            self.status.show("nothing is running (escape stops a continue)")

    def action_toggle_maximize(self) -> None:
        """The pane that has the focus (schedule, blobs, or the tabs) fills the screen."""
        if self.maximized is not None:
            self.minimize()
            return
        focused = self.focused
        panes: list[Widget] = [self.query_one("#left"), self.blob_panel, self.tabs]
        for pane in panes:
            if focused is not None and (focused is pane or pane in focused.ancestors):
                self.maximized = pane
                return
        self.maximized = self.tabs

    # ------------------------------------------------------------------ user selections
    @on(LayerList.HeadingChanged)
    def on_layer_list_heading_changed(self, event: LayerList.HeadingChanged) -> None:
        """The layer list's column titles follow its columns."""
        self.query_one("#layers-heading", Static).update(event.heading)

    @on(LayerList.LayerHighlighted)
    def on_layer_highlighted(self, event: LayerList.LayerHighlighted) -> None:
        """The user moved to another layer: show its blobs and internals."""
        self._request(layer=event.layer, blob=None)

    @on(BlobPanel.BlobHighlighted)
    def on_blob_highlighted(self, event: BlobPanel.BlobHighlighted) -> None:
        """Histograms follow the blob under the cursor."""
        self._request(blob=event.blob)

    @on(TabbedContent.TabActivated)
    def on_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """The user chose a tab: it is preferred from now on (if it applies)."""
        pane_id = event.pane.id
        if pane_id is None or pane_id == self._shown_tab:
            return  # the view switched to it (the layer's own internals), not the user
        self._shown_tab = pane_id
        pane = self.tabs.get_pane(pane_id)
        planes = list(pane.query(PlanePane))
        changes: dict[str, Any] = {"tab": pane_id}
        if planes:
            changes.update(item=planes[0].item, channel=planes[0].channel)
        self._request(**changes)

    def on_plane_selected(self, event: msg.PlaneSelected) -> None:
        """[ ] { } in a plane view: another channel or batch item."""
        self._request(item=event.item, channel=event.channel)

    def on_pool_cell_moved(self, event: msg.PoolCellMoved) -> None:
        """Arrows in the pooling view: another output cell."""
        self._request(pool_cell=(event.y, event.x))

    # ------------------------------------------------------------------ worker messages
    def on_load_progressed(self, event: msg.LoadProgressed) -> None:
        self._cancel_running_label()  # the load says more than its generic label
        if event.total is None:
            self.status.start(event.what, None)
        else:
            self.status.advance(f"{event.what}  {event.done}/{event.total}", event.done,
                                event.total)

    def on_session_loaded(self, event: msg.SessionLoaded) -> None:
        self.blob_names = event.blobs
        self.query_one(SessionHeader).loading_net = ""
        self.query_one(NotesLine).add(event.notes)
        self.training = event.training
        if event.training:  # the first view activates it (the app asks for it first)
            self.query_one("#layers-legend", Static).update(TRAINING_LEGEND)
            self.tabs.show_tab(TAB_TRAINING)
        if event.data_layers:
            self.tabs.show_tab(TAB_BATCH)
        self._sync_bindings()

    def on_session_failed(self, event: msg.SessionFailed) -> None:
        from bpinspect.tui.screens.error import ErrorModal

        self.status.finish(event.message, "error")
        self.app.push_screen(ErrorModal("could not load the net", event.message,
                                        event.details, quit_on_close=True))

    def on_run_started(self, event: msg.RunStarted) -> None:
        """A continue shows its bar at once; a single command says what runs only if it
        takes a while (most steps are over before anyone could read it)."""
        self._cancel_running_label()
        if event.total is not None:
            self.status.start(event.label, event.total)
        else:
            self._running_timer = self.set_timer(
                0.15, lambda: self.status.start(event.label, None, bar=False))

    def on_run_progressed(self, event: msg.RunProgressed) -> None:
        where = f"{event.where}: " if event.where else ""
        self.status.advance(f"{where}running {event.step.label}  {event.done}/{event.total}  "
                            "(escape stops)", event.done, event.total)

    def _cancel_running_label(self) -> None:
        if self._running_timer is not None:
            self._running_timer.stop()
            self._running_timer = None

    def on_run_stopped(self, event: msg.RunStopped) -> None:
        self._cancel_running_label()
        self.status.finish(event.status, event.severity)
        if event.severity == "warning":
            self.notify(event.status, title="stopped", severity="warning", timeout=6)
        self._sync_bindings()

    def on_command_failed(self, event: msg.CommandFailed) -> None:
        self._cancel_running_label()
        self.status.finish(event.message, "error")
        self.notify(event.message, title=f"{event.label} failed", severity="error", timeout=8)
        self._sync_bindings()

    def on_layer_code_failed(self, event: msg.LayerCodeFailed) -> None:
        from bpinspect.tui.screens.error import ErrorModal

        self._cancel_running_label()
        self.status.finish(event.message, "error")
        self.app.push_screen(ErrorModal(f"{event.label}: a Python layer raised", event.message,
                                        event.details))
        self._sync_bindings()

    def on_internal_error_raised(self, event: msg.InternalErrorRaised) -> None:
        from bpinspect.tui.screens.error import ErrorModal

        self._cancel_running_label()
        self.status.finish(f"internal error in {event.label}: {event.message}", "error")
        self.app.push_screen(ErrorModal(f"internal error in {event.label}", event.message,
                                        event.details))

    def on_notes_added(self, event: msg.NotesAdded) -> None:
        self.query_one(NotesLine).add(event.notes)

    def action_notes(self) -> None:
        from bpinspect.tui.screens.notes import NotesScreen

        self.app.push_screen(NotesScreen(self.query_one(NotesLine).notes))

    def on_files_exported(self, event: msg.FilesExported) -> None:
        self.notify(f"{len(event.paths)} file(s) in {event.directory}", title="exported",
                    timeout=6)

    def on_view_updated(self, event: msg.ViewUpdated) -> None:
        """Fresh data from the worker: every widget shows it."""
        data = event.data
        self.view = data
        self.header_info = data.header
        self.conditions = data.conditions
        self.training_conditions = data.training_conditions
        self.query_one(SessionHeader).info = data.header
        layers = self.layer_list
        layers.update_rows(data.rows)
        app = self.bpinspect
        if event.moved or app.request.layer is None:
            app.request = replace(app.request, layer=data.request.layer, blob=data.request.blob)
        elif app.request.layer == data.request.layer and app.request.blob is None:
            app.request = replace(app.request, blob=data.request.blob)
        if data.request.layer is not None and (event.moved or layers.highlighted is None):
            layers.select_layer(data.request.layer)
        self.blob_panel.show(data.panel)
        self._show_internals(data)
        self._sync_bindings()

    def _show_internals(self, data: ViewData) -> None:
        tabs = self.tabs
        layer_type = None if data.panel is None else data.panel.info.type
        own = INTERNALS_TAB_OF_TYPE.get(layer_type or "")
        old = self._internals_tab
        # Show the new tab and activate the one to show before hiding the old one: hiding
        # the active tab would make TabbedContent activate some other tab by itself.
        if own != old and own is not None:
            tabs.show_tab(own)
        if own == TAB_CONCAT and layer_type is not None:
            label = {"Split": "Split sum", "Slice": "Slice split"}.get(layer_type,
                                                                        "Concat split")
            tab = tabs.get_tab(TAB_CONCAT)
            if str(tab.label) != label:
                tab.label = label
        internals = data.internals
        if internals is not None and tabs.active != internals.tab:
            self._shown_tab = internals.tab
            tabs.active = internals.tab
        if own != old and old is not None:
            tabs.hide_tab(old)
        self._internals_tab = own
        if internals is None:
            return
        view, message = internals.view, internals.message
        if internals.tab == TAB_LRN:
            self.query_one(LRNPane).show(view, message)
        elif internals.tab == TAB_POOLING:
            self.query_one(PoolingPane).show(view, internals.cell, internals.extra, message)
        elif internals.tab == TAB_CONCAT:
            self.query_one(ConcatPane).show(view, internals.extra, message)
        elif internals.tab == TAB_DROPOUT:
            batch = 1
            if data.panel is not None and data.panel.entries:
                batch = data.panel.entries[0].shape[0] if data.panel.entries[0].shape else 1
            self.query_one(DropoutPane).show(view, batch, message)
        elif internals.tab == TAB_SOFTMAX:
            self.query_one(SoftmaxPane).show(view, message)
        elif internals.tab == TAB_GATES:
            self.query_one(GatesPane).show(view, message)
        elif internals.tab == TAB_SALIENCY:
            self.query_one(SaliencyPane).show(view, internals.extra, message)
        elif internals.tab == TAB_FLOW:
            self.query_one(GradientFlow).rows = tuple(view or ())
        elif internals.tab == TAB_TRAINING:
            self.query_one(TrainingPane).show(view, message)
        elif internals.tab == TAB_BATCH:
            self.query_one(BatchPane).show(view, message)
        elif internals.tab == TAB_DEPTH:
            self.query_one(DepthPane).show(view, message)
        elif internals.tab == TAB_UNITS:
            self.query_one(UnitsPane).show(view, message, internals.extra.get("series"))
