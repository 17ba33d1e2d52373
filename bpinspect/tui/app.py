"""The bpinspect TUI: a Textual app over one debugger Session.

``BpinspectApp`` owns the session and the one worker thread that touches it:
every command (step, continue, step back, restart, inject, export, and the
gathering of what the screen shows) is queued and run, in order, by
``_drain`` (``@work(thread=True, exclusive=True, group="session")``), so the
screen stays responsive during a long step and a Session (not thread-safe)
is never used from two threads. The worker posts messages (``messages.py``);
``MainScreen`` turns them into widget updates. No numbers are computed here.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import get_current_worker

from bpinspect.errors import EXIT_USAGE, BpinspectError, error_details
from bpinspect.session.batch_view import data_layers
from bpinspect.session.layer_cost import CostMeter
from bpinspect.session.schedule import BACKWARD, FORWARD
from bpinspect.session.session import Session
from bpinspect.session.units import UnitTracker
from bpinspect.tui import messages as msg
from bpinspect.tui.view_data import (
    TAB_TRAINING,
    CompareTo,
    StatsCache,
    ViewRequest,
    follow_layer,
    gather,
    is_training,
    no_loss_hint,
    row_of,
)


@dataclass
class Command:
    """One thing for the session worker to do."""

    kind: str  # a key of BpinspectApp._COMMANDS
    label: str  # what the status line says while it runs
    args: dict[str, Any] = field(default_factory=dict)
    on_error: Callable[[str], None] | None = None  # instead of the status line (dialogs)


@dataclass
class Outcome:
    """What a command did: the status line text, and whether the cursor moved."""

    status: str
    severity: str = "information"
    moved: str | None = None  # "forward" | "backward" | "back" (stepped back / restarted)
    stop: Any = None
    compute_seconds: float = 0.0
    refresh: bool = True  # gather the view afterwards
    follow: str | None = None  # a layer to show instead of following the cursor


class BpinspectApp(App[int]):
    """Step through a Caffe net's forward and backward pass, one layer at a time."""

    CSS_PATH = "app.tcss"
    TITLE = "bpinspect"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit", id="quit", tooltip="Leave bpinspect"),
        Binding("question_mark,f1", "help", "help", id="help",
                tooltip="Every key, and how to read the screen"),
    ]
    """
    | Key | Description |
    | :- | :- |
    | q | Quit. |
    | ? / F1 | The help screen. |
    | ctrl+p | The command palette (every action, searchable). |
    """

    def __init__(self, options: argparse.Namespace | None = None, *,
                 session: Session | None = None,
                 session_factory: Callable[..., Session] | None = None) -> None:
        super().__init__()
        self.options = options
        """The command line (None when a session is handed over directly)."""
        self.session: Session | None = session
        """The debugger (None until it has loaded)."""
        self.load_error: str | None = None
        """Why the session could not be built, if it could not."""
        self.request = ViewRequest()
        """What the screen wants to see; replaced by the UI thread, read by the worker."""
        self._session_factory = session_factory
        self._queue: deque[Command] = deque()
        self._queue_lock = threading.Lock()
        self._worker_active = False
        self._cancel = threading.Event()
        self._stats_cache = StatsCache()
        self._notes_seen = 0
        self._console: Any = None  # the ! console's namespace (a session.console.Console)
        self.console_history: list[str] = []
        """The ! console's inputs, oldest first (kept while the console is closed)."""
        self.compare: CompareTo | None = None
        """The dump the blob table marks agreement with (``--compare DUMP``)."""
        self.cost_meter: CostMeter | None = None
        """Times every layer call of the session's net (the layer list shows them)."""
        self.unit_tracker: UnitTracker | None = None
        """Training: dead and saturated units per iteration (the Units tab plots them)."""
        self.at_end = False
        """Step and continue have nothing to do: the cursor is past the last step (in
        training: max_iter is reached)."""
        self.at_start = True
        """Nothing has run in this pass (step back has nothing to undo)."""
        self.show_timings = True
        """Say how long steps took (off for screenshots, which must not change)."""
        self.timings: list[dict[str, float]] = []
        """Per command: seconds of compute and of gathering the view (bench/tui_latency.py)."""

    # ------------------------------------------------------------------ screens
    def get_default_screen(self) -> Screen[Any]:
        from bpinspect.tui.screens.main import MainScreen

        self.main_screen = MainScreen()
        return self.main_screen

    def _post(self, message: Any) -> None:
        """Send a worker message to the main screen (thread-safe)."""
        self.main_screen.post_message(message)

    @property
    def training(self) -> bool:
        """The session runs a solver's iterations (``bpinspect --solver``)."""
        return self.session is not None and is_training(self.session)

    @property
    def busy(self) -> bool:
        """The session worker is running a command (keys that move the cursor wait)."""
        return self._worker_active

    def on_mount(self) -> None:
        # After the first frame: building the net would otherwise compete with painting it.
        if self.session is None:
            self.call_after_refresh(self.submit, Command("load", "loading"))
        else:
            self.call_after_refresh(self.submit, Command("attach", "starting"))

    def action_help(self) -> None:
        from bpinspect.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(training=self.training))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield from self.main_screen.palette_commands()
        yield SystemCommand("Help", "Every key, and how to read the screen (?)", self.action_help)

    # ------------------------------------------------------------------ the worker
    def submit(self, command: Command) -> None:
        """Queue ``command`` for the session worker (started if idle)."""
        with self._queue_lock:
            if command.kind == "refresh" and any(c.kind == "refresh" for c in self._queue):
                return  # one pending refresh reads the newest request anyway
            self._queue.append(command)
            if self._worker_active:
                return
            self._worker_active = True
        self._cancel.clear()
        self._drain()

    def interrupt(self) -> bool:
        """Stop a continue between two layers and drop queued commands."""
        with self._queue_lock:
            dropped = [c for c in self._queue if c.kind != "refresh"]
            for c in dropped:
                self._queue.remove(c)
            active = self._worker_active
        if active:
            self._cancel.set()
        return active

    @work(thread=True, exclusive=True, group="session", exit_on_error=False,
          description="bpinspect session")
    def _drain(self) -> None:
        moved: str | None = None
        follow: str | None = None
        finished: list[Any] = []  # posted with the view: one repaint shows both
        while True:
            with self._queue_lock:
                if not self._queue:
                    self._worker_active = False
                    break
                command = self._queue.popleft()
            outcome = self._execute(command, finished)
            if outcome is not None:
                moved = outcome.moved or moved
                follow = outcome.follow or follow
            with self._queue_lock:
                pending = bool(self._queue)
            if pending:
                continue
            if self.session is not None and (outcome is None or outcome.refresh):
                self._post_view(moved, follow, outcome)
                moved = follow = None
            for message in finished:
                self._post(message)
            finished.clear()
            self._post_new_notes()

    def _execute(self, command: Command, finished: list[Any]) -> Outcome | None:
        """Run ``command``; what the status line should say afterwards goes to
        ``finished`` (posted once the view is gathered)."""
        started = time.perf_counter()
        try:
            if command.kind not in ("refresh",):
                self._post(msg.RunStarted(command.label, command.args.get("total")))
            handler = getattr(self, f"_do_{command.kind}")
            outcome: Outcome | None = handler(command)
        except BpinspectError as exc:
            if command.on_error is not None:
                self.call_from_thread(command.on_error, str(exc))
            if error_details(exc):  # a Python layer raised: its traceback in the modal
                self._post(msg.LayerCodeFailed(command.label, str(exc), error_details(exc)))
            else:
                self._post(msg.CommandFailed(command.label, str(exc)))
            return Outcome(str(exc), "error")
        except Exception as exc:  # a bug: show it, keep the app alive
            self._post(msg.InternalErrorRaised(
                command.label, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            return Outcome(f"internal error in {command.label}", "error")
        if outcome is not None and command.kind not in ("refresh",):
            finished.append(msg.RunStopped(
                command.label, outcome.status, outcome.severity, outcome.stop,
                outcome.compute_seconds or time.perf_counter() - started))
        return outcome

    def _post_view(self, moved: str | None, follow: str | None,
                   outcome: Outcome | None) -> None:
        session = self.session
        assert session is not None
        started = time.perf_counter()
        request = self.request
        if follow is not None or moved is not None:
            layer = follow or follow_layer(session, moved_back=moved == "back")
            request = replace(request, layer=layer, blob=None)
        elif request.layer is None:
            request = replace(request, layer=follow_layer(session))
        try:
            data = gather(session, request, self._stats_cache,
                          moved=moved if moved in (FORWARD, BACKWARD) else None,
                          compare=self.compare,
                          # times change from run to run: none in snapshots and screenshots
                          costs=self.cost_meter if self.show_timings else None,
                          units=self.unit_tracker)
        except BpinspectError as exc:
            self._post(msg.CommandFailed("show", str(exc)))
            return
        except Exception as exc:
            self._post(msg.InternalErrorRaised(
                "show", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
            return
        training: Any = session
        self.at_end = training.finished if is_training(session) else session.at_end
        self.at_start = not session.can_step_back
        seconds = time.perf_counter() - started
        if outcome is not None and outcome.compute_seconds:
            self.timings.append({"compute": outcome.compute_seconds, "gather": seconds})
        self._post(msg.ViewUpdated(data, moved is not None or follow is not None,
                                          seconds))

    def _post_new_notes(self) -> None:
        if self.session is None:
            return
        notes = self.session.notes
        if len(notes) > self._notes_seen:
            new = list(notes[self._notes_seen:])
            self._notes_seen = len(notes)
            self._post(msg.NotesAdded(new))

    def _check_cancel(self) -> bool:
        return self._cancel.is_set() or get_current_worker().is_cancelled

    # ------------------------------------------------------------------ commands
    def _do_load(self, command: Command) -> Outcome | None:
        options = self.options
        assert options is not None
        what = getattr(options, "net", None) or getattr(options, "solver", None)
        self._post(msg.LoadProgressed(0, None, f"loading {what}"))
        started = time.perf_counter()
        factory = self._session_factory
        if factory is None:
            from bpinspect.session.options import session_from_options

            factory = session_from_options
        def progress(what: str, done: int, total: int | None) -> None:
            self._post(msg.LoadProgressed(done, total, what))

        try:
            session = factory(options, progress=progress)
        except BpinspectError as exc:
            self.load_error = "\n".join(filter(None, [str(exc), error_details(exc)]))
            self._post(msg.SessionFailed(str(exc), error_details(exc)))
            return Outcome(str(exc), "error", refresh=False)
        return self._use_session(session, time.perf_counter() - started)

    def _do_attach(self, command: Command) -> Outcome | None:
        assert self.session is not None
        return self._use_session(self.session, 0.0)

    def _use_session(self, session: Session, seconds: float) -> Outcome:
        self.session = session
        self._stats_cache = StatsCache()
        self._notes_seen = len(session.notes)
        self.compare = self._compare_to()
        if self.unit_tracker is not None:  # wrapped after the meter: undone before it
            self.unit_tracker.detach()
        if self.cost_meter is not None:
            self.cost_meter.detach()
        self.cost_meter = CostMeter(session.net)
        self.cost_meter.attach()
        training = is_training(session)
        self.unit_tracker = None
        if training:
            tracked: Any = session
            self.unit_tracker = UnitTracker(session.net, lambda: int(tracked.iteration))
            self.unit_tracker.attach()
        if training:  # the Training tab first: the loss is training's first question
            self.call_from_thread(self._prefer_tab, TAB_TRAINING)
        self._post(msg.SessionLoaded(list(session.notes), seconds, list(session.net.blobs),
                                     str(session.export_dir), training,
                                     bool(data_layers(session))))
        first = session.next_step
        took = f" in {seconds:.1f} s" if self.show_timings and seconds else ""
        keys = "n steps, c continues, u runs to an iteration" if training else \
            "n steps, c continues"
        return Outcome(f"loaded {session.net.name}{took}: {keys}, ? shows every key",
                       follow=None if first is None else row_of(first))

    def _compare_to(self) -> CompareTo | None:
        """(worker) the ``--compare`` dump, read once (validate_options checked it)."""
        path = getattr(self.options, "compare", None)
        if not path:
            return None
        from bpinspect.session.compare import DEFAULT_ATOL, DEFAULT_RTOL, read_dump

        rtol = getattr(self.options, "compare_rtol", None)
        return CompareTo(read_dump(path), DEFAULT_RTOL if rtol is None else rtol, DEFAULT_ATOL)

    def _prefer_tab(self, tab: str) -> None:
        """(UI thread) ask for ``tab`` in the views from now on."""
        self.request = replace(self.request, tab=tab)

    def _do_refresh(self, command: Command) -> Outcome | None:
        return None

    def _session(self) -> Session:
        if self.session is None:
            raise BpinspectError("the net has not loaded")
        return self.session

    def _do_step(self, command: Command) -> Outcome:
        session: Any = self._session()
        started = time.perf_counter()
        training = is_training(session)
        before = self._where(session) if training else ""
        result = session.step()
        seconds = time.perf_counter() - started
        if result is None:
            if training:
                return Outcome(f"max_iter {session.max_iter} reached: r restarts this pass, "
                               "p steps back", refresh=False)
            return Outcome("end of the pass: r restarts, p steps back", refresh=False)
        status = f"ran {result.step.label}" + (f" in {seconds * 1000:.0f} ms"
                                               if self.show_timings else "")
        if training and self._where(session) != before:
            status = f"began {self._where(session)}; {status}"
        severity = "information"
        hint = "" if training else zero_backward_hint(session)
        if hint:
            status, severity = f"{status}; {hint}", "warning"
        if result.hits:
            status = result.hits[0].message
            severity = "warning"
        return Outcome(status, severity, moved=result.step.direction, compute_seconds=seconds)

    @staticmethod
    def _where(session: Any) -> str:
        """``iteration 3`` (``, pass 2 of 4`` with iter_size > 1) of a training session."""
        where = f"iteration {session.iteration}"
        if session.iter_size > 1:
            where += f", pass {session.pass_index + 1} of {session.iter_size}"
        return where

    def _progress(self, session: Any, target: int | None) -> Callable[[int, int, Any], None]:
        """A continue's progress callback; in training it counts iterations (to
        ``target``, else to max_iter) and says which one runs."""
        if not is_training(session):
            def steps(done: int, total: int, step: Any) -> None:
                self._post(msg.RunProgressed(done, total, step))
            return steps
        start = int(session.iteration)
        end = session.max_iter if target is None else target

        def iterations(done: int, total: int, step: Any) -> None:
            self._post(msg.RunProgressed(int(session.iteration) - start, max(end - start, 1),
                                         step, self._where(session)))
        return iterations

    def _do_until(self, command: Command) -> Outcome:
        session: Any = self._session()
        if not is_training(session):
            raise BpinspectError("u runs to an iteration of a training session "
                                 "(bpinspect --solver SOLVER)")
        target = int(command.args["iteration"])
        started = time.perf_counter()
        stop = session.run_to_iteration(target, progress=self._progress(session, target),
                                        cancel=self._check_cancel)
        return self._stopped(session, stop, time.perf_counter() - started)

    def _do_continue(self, command: Command) -> Outcome:
        session = self._session()
        progress = self._progress(session, None)
        started = time.perf_counter()
        if is_training(session) and "layer" not in command.args:
            stop = session.continue_(progress=progress, cancel=self._check_cancel)
            return self._stopped(session, stop, time.perf_counter() - started)
        if "layer" in command.args:
            stop = session.run_to(command.args["layer"], command.args["direction"],
                                  progress=progress, cancel=self._check_cancel)
        else:
            stop = session.continue_(progress=progress, cancel=self._check_cancel)
        seconds = time.perf_counter() - started
        severity = "warning" if stop.reason in ("breakpoint", "condition") else "information"
        moved = stop.step.direction if stop.step is not None else FORWARD
        follow = None
        if stop.reason == "breakpoint" and session.next_step is not None:
            follow = row_of(session.next_step)  # stopped before it: show what it will read
        took = f" ({seconds:.2f} s)" if self.show_timings else ""
        return Outcome(f"{stop.message}{took}", severity, moved=moved, stop=stop,
                       compute_seconds=seconds, follow=follow)

    def _stopped(self, session: Any, stop: Any, seconds: float) -> Outcome:
        """Where a training run stopped: the status says the iteration, and the view
        shows the layer the stop is about (where a NaN first appeared, say)."""
        severity = "warning" if stop.reason in ("breakpoint", "condition") else "information"
        moved = stop.step.direction if stop.step is not None else FORWARD
        follow = None
        hit = stop.hits[0] if stop.hits else None
        if hit is not None and hit.first_layer:
            follow = hit.first_layer
        elif stop.reason == "breakpoint" and session.next_step is not None:
            follow = row_of(session.next_step)  # stopped before it: show what it will read
        elif stop.reason in ("target", "max_iter") and stop.step is not None:
            follow = row_of(session.next_step or stop.step)
        if stop.reason == "target":
            message = f"at the start of {self._where(session)} ({stop.steps_run} steps run)"
        elif stop.reason == "max_iter":
            message = (f"max_iter {session.max_iter} reached after iteration "
                       f"{session.iteration} ({stop.steps_run} steps run)")
        else:
            message = f"{stop.message} — {self._where(session)}"
        took = f" ({seconds:.2f} s)" if self.show_timings else ""
        return Outcome(f"{message}{took}", severity, moved=moved, stop=stop,
                       compute_seconds=seconds, follow=follow)

    def _do_back(self, command: Command) -> Outcome:
        session = self._session()
        started = time.perf_counter()
        training = is_training(session)
        where = self._where(session) if training else ""
        step = session.step_back()
        if step is None:
            return Outcome("at the start of the pass: nothing to step back over", refresh=False)
        message = f"stepped back over {step.label}"
        if training and self._where(session) != where:
            message += f", into {self._where(session)}"
        return Outcome(message, moved="back",
                       compute_seconds=time.perf_counter() - started, follow=row_of(step))

    def _do_restart(self, command: Command) -> Outcome:
        session = self._session()
        session.restart()
        if is_training(session):
            return Outcome(f"restarted {self._where(session)}: the same batch, the weights "
                           "and the solver's history as the pass began", moved="back")
        return Outcome("restarted: a new pass with the same inputs, weights, injections and "
                       "breakpoints", moved="back")

    def _do_toggle_break(self, command: Command) -> Outcome:
        session = self._session()
        layer = command.args["layer"]
        direction = command.args.get("direction", "both")
        now = session.breakpoints.toggle(layer, direction)
        where = "" if direction == "both" else f" ({direction})"
        return Outcome(f"breakpoint {'set on' if now else 'removed from'} {layer}{where}")

    def _do_conditions(self, command: Command) -> Outcome:
        session: Any = self._session()
        bp = session.breakpoints
        bp.set_condition("nonfinite", command.args["nonfinite"])
        bound = command.args.get("bound")
        bp.set_condition("max_abs", bound is not None, bound)
        bp.set_condition("zero_diff", command.args["zero_diff"])
        described = [c.describe() for c in bp.conditions]
        training = command.args.get("training")
        if training is not None and is_training(session):
            tc = session.training_conditions
            tc.set_loss_above(training["loss_above"])
            tc.set_ratio_above(training["ratio_above"])
            tc.loss_nonfinite = bool(training["loss_nonfinite"])
            tc.iterations.clear()
            for iteration in training["iterations"]:
                tc.add_iteration(iteration)
            described += tc.describe()
        return Outcome("stop when: " + ("; ".join(described) if described else
                                        "(no conditions)"))

    def _do_inject(self, command: Command) -> Outcome:
        session = self._session()
        blob, spec = command.args["blob"], command.args["spec"]
        if spec == "":
            session.clear_injection(blob)
            return Outcome(f"removed the injection at {blob}", moved="back")
        inj = session.inject(blob, spec)
        if command.args.get("done") is not None:
            self.call_from_thread(command.args["done"])
        return Outcome(f"injected {blob}={inj.spec}: backward starts at "
                       f"{session.net.layer_names[session.net.producer_index(blob)]}",
                       moved="back")

    def _do_export(self, command: Command) -> Outcome:
        session = self._session()
        paths: list[Path] = []
        for kind, step in command.args["kinds"]:
            paths += session.export(command.args["name"], kind, step=step,
                                    param=command.args.get("param"))
        return self._exported(paths, session)

    def _do_console(self, command: Command) -> Outcome:
        """``!``: one input of the Python console, in this worker like every command
        (a long input leaves the screen responsive; escape interrupts it)."""
        from bpinspect.session.console import Console

        session = self._session()
        console = self._console
        if console is None or console.session is not session:  # names live per session
            console = self._console = Console(session)
        cursor, generation = session.cursor, session.generation
        result = console.run(command.args["source"], command.args.get("viewed"),
                             cancel=self._check_cancel)
        command.args["screen"].post_message(msg.ConsoleEvaluated(result.output,
                                                                 result.status))
        # The input may have stepped or rewound the session: then show where it is.
        changed = (session.cursor, session.generation) != (cursor, generation)
        return Outcome(f"console: input {console.inputs} {result.status}",
                       "warning" if result.status != "ok" else "information",
                       refresh=changed)

    def _do_gradcheck(self, command: Command) -> Outcome:
        """``g``: the numerical gradient check of one layer at its real shapes, as
        ``bpinspect check`` does (its bottoms must have been computed)."""
        from bpinspect.session import netcheck

        session = self._session()
        layer = command.args["layer"]
        net = session.net
        if layer not in net.layer_names:
            raise BpinspectError(f"{layer}: the gradient check runs on a layer of the net")
        fwd = session.step_of(layer, FORWARD)
        if session.cursor < fwd.index:
            raise BpinspectError(f"{layer}: run forward to it first (its bottoms are not "
                                 "computed yet)")
        i = net.layer_names.index(layer)
        eps, threshold = netcheck.DEFAULT_EPS, netcheck.DEFAULT_THRESHOLD
        started = time.perf_counter()
        # Asked before each sampled coordinate: escape stops a big layer's check in
        # two of its forwards.
        check = netcheck.check_layer_in_net(net, i, eps=eps, threshold=threshold,
                                            seed=getattr(session, "seed", 0) or 0,
                                            cancel=self._check_cancel)
        seconds = time.perf_counter() - started
        if check.cancelled:
            return Outcome(f"gradient check of {layer} cancelled after {check.checked} "
                           "coordinate(s)", "warning", refresh=False)
        self._post(msg.GradientChecked(check, eps, threshold))
        verdict = check.note or (("passed" if check.passed else "FAILED")
                                 + f", largest relative error {check.max_rel_error:.2e}")
        return Outcome(f"gradient check of {layer}: {verdict}",
                       "information" if check.passed else "warning", refresh=False,
                       compute_seconds=seconds)

    def _do_export_all(self, command: Command) -> Outcome:
        session = self._session()
        paths = session.export_all()
        return self._exported(paths, session)

    def _exported(self, paths: list[Path], session: Session) -> Outcome:
        directory = str(Path(session.export_dir).resolve())
        self._post(msg.FilesExported([str(p) for p in paths], directory))
        names = ", ".join(p.name for p in paths[:2]) + (" …" if len(paths) > 2 else "")
        return Outcome(f"exported {len(paths)} file(s) to {directory}: {names}", refresh=False)


# ---------------------------------------------------------------------- entry point
def zero_backward_hint(session: Session) -> str:
    """Before the first backward step of a net with no loss and nothing injected: say
    that backward will carry zeros and how to inject a top diff ("" otherwise)."""
    nxt = session.next_step
    last = session.last_step
    if nxt is None or nxt.direction != BACKWARD or (last is not None
                                                   and last.direction == BACKWARD):
        return ""
    return no_loss_hint(session)


def run_app(options: argparse.Namespace) -> int:
    """``bpinspect NET ...``: check the arguments, run the app, return the exit code."""
    try:
        _check_options(options)
    except BpinspectError as exc:
        print(f"bpinspect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    app = BpinspectApp(options)
    app.run()
    if app.load_error is not None:
        print(f"bpinspect: {app.load_error}", file=sys.stderr)
        return EXIT_USAGE
    return int(app.return_code or 0)


def _check_options(options: argparse.Namespace) -> None:
    """What is wrong with the arguments themselves, found cheaply before the app starts
    (the net is built later, in the worker, so that the first frame comes at once)."""
    from bpinspect.session.options import validate_options

    validate_options(options)
