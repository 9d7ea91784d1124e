"""Bio-Dream sensor node: EEG of a group of participants in, one scored sleep stage per participant per hop out.

Topics:
  publishes   /biodream/samples   lumina_nodes/BioDreamSample, one per participant every hop_s (stamped at the end
                                  of the scored epoch)
  publishes   /diagnostics        per participant signal quality and problem; samples read, lost, skipped; the
                                  backend's own statuses; agreement with the ground truth where the backend has one

The EEG source is a backend (lumina_nodes.backends.biodream: sim, brainflow, edf) chosen by the ``backend``
parameter; the scoring is lumina_nodes.kernels.sleep_staging over the sliding epochs of
lumina_nodes.kernels.epoch_window. Participants come from a YAML map (``participants_file``) or are generated
(``participant_count`` wearing jewels first_jewel_id, first_jewel_id + jewel_id_stride, ...).
"""

from collections import deque

import numpy as np
from rclpy.node import Node

from lumina_nodes.backends.biodream import BACKENDS, GroundTruth, make_biodream_backend
from lumina_nodes.backends.biodream.participants import generated_participants, load_participants
from lumina_nodes.constants import DiagnosticLevel, SleepStage
from lumina_nodes.kernels.epoch_window import EpochWindow
from lumina_nodes.kernels.sleep_staging import SleepStager, StagingConfig
from lumina_nodes.msg import BioDreamSample
from lumina_nodes.nodes.common import (
    SAMPLES_QOS,
    DiagnosticsPublisher,
    Param,
    StartupError,
    check_choices,
    clock_seconds,
    declare_parameters,
    diagnostic_status,
    params_from_settings,
    run_node,
)

NODE_PARAMS = (
    Param("backend", "sim", "EEG source.", choices=tuple(BACKENDS), read_only=True),
    Param("plaza", "", "Plaza (driver id) the participants belong to, sent in every sample.", read_only=True),
    Param(
        "participants_file",
        "",
        "YAML map of the participants (format: config/biodream_participants.yaml); empty: generated from "
        "participant_count, first_jewel_id and jewel_id_stride.",
        read_only=True,
    ),
    Param("participant_count", 4, "Generated participants (participants_file empty).", 1, 1024, read_only=True),
    Param(
        "first_jewel_id",
        1,
        "Jewel worn by the first generated participant (-1: generated participants wear none).",
        -1,
        2**32 - 2,
        read_only=True,
    ),
    Param("jewel_id_stride", 1, "Jewel id step between generated participants.", 1, 1_000_000, read_only=True),
    Param("channels", 2, "EEG channels per participant (sim; brainflow without a map).", 1, 4, read_only=True),
    Param("seed", 0, "Seed of the simulated EEG (sim).", 0, 2**31 - 1, read_only=True),
    Param(
        "read_period_s",
        0.05,
        "How often the backend is read, s; an epoch whose end falls between two reads gets its own read then.",
        0.01,
        5.0,
        read_only=True,
    ),
    Param(
        "board_id", -1, "BrainFlow board id (brainflow; -1 synthetic, -3 playback file).", -100, 1000, read_only=True
    ),
    Param("serial_port", "", "Serial port of the board (brainflow).", read_only=True),
    Param("board_file", "", "Recording a BrainFlow playback board plays (brainflow, board_id -3).", read_only=True),
    Param("master_board", -100, "Board a playback file was recorded with (brainflow).", -100, 1000, read_only=True),
    Param("edf_file", "", "EDF+ recording (edf; a participant's own 'file' in the map wins).", read_only=True),
    Param(
        "speed", 1.0, "Replay speed of a recording (edf): recorded seconds per second.", 0.01, 10000.0, read_only=True
    ),
)
STAGING_PARAMS = params_from_settings(StagingConfig)
#: Every parameter of the node, as it declares them (--help and docs/parameters.md read this table too).
PARAMETERS = NODE_PARAMS + STAGING_PARAMS
LATENCY_WINDOW = 1000  # publishes the latency percentiles are taken over
EPOCH_READ_MARGIN_S = 0.0005  # the extra read at an epoch's end comes this much after it


class BioDreamSensor(Node):
    def __init__(self):
        super().__init__("biodream_sensor")
        try:
            self.params = declare_parameters(self, PARAMETERS)
            self.config = StagingConfig(**{p.name: self.params[p.name] for p in STAGING_PARAMS})
            errors = self.config.validate()
            if errors:
                raise ValueError("; ".join(errors))
            self.participants = self._participants()
            self.backend = make_biodream_backend(self.params["backend"], **self._backend_parameters())
            self.backend.start()
            self.stager = SleepStager(
                self.backend.participants, self.backend.channels, self.backend.sample_rate_hz, self.config
            )
            self.window = EpochWindow(
                self.backend.participants,
                self.backend.channels,
                self.backend.sample_rate_hz,
                self.config.epoch_s,
                self.config.hop_s,
                self.backend.speed,
            )
        except (ValueError, TypeError, RuntimeError, OSError) as error:
            raise StartupError(f"invalid configuration: {error}") from error
        self.add_on_set_parameters_callback(lambda changes: check_choices(NODE_PARAMS, changes))

        self.publisher = self.create_publisher(BioDreamSample, "/biodream/samples", SAMPLES_QOS)
        count = len(self.participants)
        self.samples_read = 0
        self.nan_values = 0  # lost or invalid samples, counted per participant and channel
        self.samples_skipped = 0
        self.epochs_scored = 0
        self.last_scores = None
        self.problem_counts = [dict() for _ in range(count)]
        self.truth_epochs = np.zeros(count, np.int64)  # epochs with a known true stage and a usable score
        self.truth_agreed = np.zeros(count, np.int64)
        self.latencies = deque(maxlen=LATENCY_WINDOW)  # s, epoch end -> publish, node clock
        self.reported_errors = set()
        self.timer = self.create_timer(self.params["read_period_s"], self._read)
        self.epoch_timer = None  # one-shot: the read at the end of the next epoch, when it precedes the next tick
        self.diagnostics = DiagnosticsPublisher(self, self._diagnostics)
        self.get_logger().info(
            f"Bio-Dream sensor up: backend {self.params['backend']}, {count} participants x "
            f"{self.backend.channels} channels at {self.backend.sample_rate_hz:g} Hz, epoch {self.config.epoch_s:g} s "
            f"every {self.config.hop_s:g} s"
        )

    # ------------------------------------------------------------------------------------------ configuration
    def _participants(self):
        if self.params["participants_file"]:
            return load_participants(self.params["participants_file"])
        return generated_participants(
            self.params["participant_count"], self.params["first_jewel_id"], self.params["jewel_id_stride"]
        )

    def _backend_parameters(self):
        """Backend constructor arguments from the node parameters and the participant map."""
        values, participants = self.params, self.participants
        backend = values["backend"]
        if backend == "sim":
            return {"participants": len(participants), "channels": values["channels"], "seed": values["seed"]}
        if backend == "brainflow":
            if self.get_parameter("use_sim_time").value:
                raise ValueError("backend 'brainflow' reads a live board: it needs the wall clock (use_sim_time false)")
            groups = [p.channels for p in participants]
            if not all(groups):
                channels = values["channels"]
                groups = [tuple(range(k * channels, (k + 1) * channels)) for k in range(len(participants))]
            parameters = {
                "board_id": values["board_id"],
                "eeg_channels": [",".join(map(str, group)) for group in groups],
                "serial_port": values["serial_port"],
                "file": values["board_file"],
            }
            if values["master_board"] != -100:
                parameters["master_board"] = values["master_board"]
            return parameters
        if not all(p.labels for p in participants):
            raise ValueError("backend 'edf' needs a participants_file giving each participant's 'labels'")
        files = [p.file or values["edf_file"] for p in participants]
        if not all(files):
            raise ValueError("backend 'edf' needs edf_file (or a 'file' for every participant in the map)")
        return {
            "file": files[0] if len(set(files)) == 1 else files,
            "labels": [",".join(p.labels) for p in participants],
            "speed": values["speed"],
        }

    # ------------------------------------------------------------------------------------------ the stream
    def _read(self):
        now = clock_seconds(self)
        if now <= 0.0:  # use_sim_time and no /clock yet
            return
        self._read_chunk(now)
        self._arm_epoch_read(clock_seconds(self))  # after the scoring a read may have done

    def _arm_epoch_read(self, now):
        """Read once more just after the next epoch ends when that comes before the next regular read, so that an
        epoch is scored when its last sample is due instead of up to read_period_s later (samples a backend
        delivers late are still caught by the regular reads)."""
        end = self.window.next_end_time
        if self.epoch_timer is not None or end is None:
            return
        delay = end - now + EPOCH_READ_MARGIN_S
        if 0.0 < delay < self.params["read_period_s"]:
            self.epoch_timer = self.create_timer(delay, self._on_epoch_end)

    def _on_epoch_end(self):
        self.destroy_timer(self.epoch_timer)
        self.epoch_timer = None
        self._read()

    def _read_chunk(self, now):
        chunk = self.backend.read(now)
        if chunk.skipped:
            self.samples_skipped += chunk.skipped
            self.window.restart()
        if not chunk.n:
            return
        self.samples_read += chunk.n
        self.nan_values += int(np.count_nonzero(np.isnan(chunk.data)))
        for end_time, epoch in self.window.push(chunk.start_time, chunk.data):
            scores = self.stager.score(epoch)
            self._publish(scores, end_time)
            self._compare_with_truth(scores, end_time)

    def _publish(self, scores, end_time):
        stamp = self.get_clock().now().to_msg()
        stamp.sec, stamp.nanosec = divmod(int(round(end_time * 1e9)), 10**9)
        bands = scores.band_power
        for k, participant in enumerate(self.participants):
            msg = BioDreamSample(
                participant_id=participant.id,
                jewel_id=participant.jewel,
                plaza=self.params["plaza"],
                stage=int(scores.stage[k]),
                epoch_duration=float(self.config.epoch_s),
                delta_power=float(bands[k, 0]),
                theta_power=float(bands[k, 1]),
                alpha_power=float(bands[k, 2]),
                sigma_power=float(bands[k, 3]),
                beta_power=float(bands[k, 4]),
                gamma_power=float(bands[k, 5]),
                signal_quality=float(scores.signal_quality[k]),
            )
            msg.header.stamp = stamp
            msg.stage_probability = scores.probability[k].astype(np.float32)
            self.publisher.publish(msg)
            if scores.problem[k]:
                self.problem_counts[k][scores.problem[k]] = self.problem_counts[k].get(scores.problem[k], 0) + 1
        self.epochs_scored += 1
        self.last_scores = scores
        self.latencies.append(clock_seconds(self) - end_time)

    def _compare_with_truth(self, scores, end_time):
        if not isinstance(self.backend, GroundTruth):
            return
        # the stage that held over most of the epoch: its middle
        truth = self.backend.stage_at(end_time - 0.5 * self.config.epoch_s / self.backend.speed)
        known = (truth != SleepStage.UNKNOWN) & (scores.stage != SleepStage.UNKNOWN)
        self.truth_epochs += known
        self.truth_agreed += known & (truth == scores.stage)

    # ------------------------------------------------------------------------------------------ diagnostics
    def _diagnostics(self):
        latencies = np.array(self.latencies) if self.latencies else np.full(1, np.nan)
        statuses = [
            diagnostic_status(
                DiagnosticLevel.OK,
                "sensor",
                f"{self.epochs_scored} epochs scored" if self.epochs_scored else "waiting for the first epoch",
                self.params["backend"],
                {
                    "backend": self.params["backend"],
                    "participants": len(self.participants),
                    "sample_rate_hz": self.backend.sample_rate_hz,
                    "samples_read": self.samples_read,
                    "nan_values": self.nan_values,
                    "samples_skipped": self.samples_skipped,
                    "epochs_scored": self.epochs_scored,
                    "latency_p50_s": float(np.percentile(latencies, 50)),
                    "latency_p99_s": float(np.percentile(latencies, 99)),
                },
            )
        ]
        scores = self.last_scores
        for k, participant in enumerate(self.participants):
            values = {"jewel_id": participant.jewel, **{f"unusable_{p}": n for p, n in self.problem_counts[k].items()}}
            if scores is None:
                level, message = DiagnosticLevel.OK, "no epoch yet"
            else:
                problem = scores.problem[k]
                level = DiagnosticLevel.WARN if problem else DiagnosticLevel.OK
                message = f"unusable signal: {problem}" if problem else "staged"
                values.update(
                    stage=SleepStage.name(int(scores.stage[k])), signal_quality=float(scores.signal_quality[k])
                )
            if self.truth_epochs[k]:
                values.update(
                    ground_truth_epochs=int(self.truth_epochs[k]),
                    ground_truth_agreement=float(self.truth_agreed[k] / self.truth_epochs[k]),
                )
            statuses.append(diagnostic_status(level, f"participant {participant.id}", message, participant.id, values))
        for level, name, message, values in self.backend.diagnostics():
            if level >= DiagnosticLevel.ERROR and (name, message) not in self.reported_errors:
                # a failure the operator must act on (board unplugged, file unreadable) is logged, not only published
                self.get_logger().error(f"{name}: {message}")
                self.reported_errors.add((name, message))
            statuses.append(diagnostic_status(min(level, DiagnosticLevel.ERROR), name, message, "", values))
        return statuses

    def close(self):
        self.backend.close()


def main(args=None):
    return run_node(BioDreamSensor, args, PARAMETERS)
