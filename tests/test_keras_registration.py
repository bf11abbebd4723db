"""Everything of optimlab's that Keras saves loads again in a new process.

One process builds one object per class that optimlab registers with Keras
(every optimizer, wrapper, schedule, legacy optimizer and ``SAMModel``), takes
one step with each optimizer and saves a model with it (``model.save``) and its
config (``keras.saving.serialize_keras_object``). Fresh processes then load them:
- after nothing but ``import optimlab`` (the registration that the lazy package
  once lost: "Could not locate class 'Adam'"), in either import order with Keras;
- with ``custom_objects`` and optimlab's names removed from Keras's registry.
Each load must give the same class, the same config and the same optimizer
variables. The saving process also checks that it covered every registered name,
so a class registered later cannot be left out of this test.
"""

import json
import subprocess
import sys
import textwrap

import pytest

SAVE = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    import keras
    import tensorflow as tf
    import optimlab
    from optimlab import registry, schedules, wrappers, legacy
    from keras.src.saving import object_registration

    out = Path(sys.argv[1])
    optimizers = {f"optimlab>{e.cls.__name__}": e.cls(**e.quadratic.kwargs) for e in registry.entries()}
    optimizers.update({f"optimlab_legacy>{name}": getattr(legacy, name)() for name in
                       ("SGD", "Adam", "Adadelta", "Adagrad", "Adamax", "Ftrl", "Nadam", "RMSprop")})
    optimizers["optimlab.legacy>Keras3Optimizer"] = legacy.as_legacy(keras.optimizers.Adam(0.01))
    optimizers["optimlab>Lookahead"] = wrappers.Lookahead(optimlab.Adam(0.01), sync_period=3)
    optimizers["optimlab>SWA"] = wrappers.SWA(optimlab.SGD(0.01), start_averaging=1, average_period=2)
    optimizers["optimlab>PerVariableOptimizer"] = wrappers.PerVariableOptimizer(
        optimlab.SGD(0.01), groups=[("bias", optimlab.Adam(0.001))])
    warmup = schedules.WarmupDecay(0.1, warmup_steps=2, decay_steps=10)
    schedule_objects = {
        "optimlab>WarmupDecay": warmup,
        "optimlab>WarmupStableDecay": schedules.WarmupStableDecay(0.1, 2, 3, 5),
        "optimlab>OneCycle": schedules.OneCycle(0.1, total_steps=10),
        "optimlab>CyclicalLearningRate": schedules.CyclicalLearningRate(0.01, 0.1, step_size=4),
        "optimlab>ScaledSchedule": schedules.ScaledSchedule(warmup, scale=0.5),
    }

    def tiny_model():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
        model.build((None, 3))
        return model

    x = np.linspace(-1, 1, 12, dtype="float32").reshape(4, 3)
    y = np.ones((4, 2), "float32")

    def take_one_step(model, optimizer):  # eagerly: a traced train step per model would cost seconds each
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    saved = {}
    for key, optimizer in {**optimizers, **{f"schedule:{k}": optimlab.SGD(learning_rate=s)
                                            for k, s in schedule_objects.items()}}.items():
        model = tiny_model()
        model.compile(optimizer=optimizer, loss="mse")
        take_one_step(model, optimizer)
        path = out / (key.replace(">", "_").replace(":", "_") + ".keras")
        model.save(path)
        saved[key] = {"path": str(path), "class": type(optimizer).__name__,
                      "config": keras.saving.serialize_keras_object(optimizer),
                      "variables": [np.asarray(v).tolist() for v in optimizer.variables]}
    sam = optimlab.SAMModel(tiny_model(), rho=0.1)
    sam.compile(optimizer=optimlab.SGD(0.1), loss="mse")
    sam.train_on_batch(x, y)
    sam.save(out / "sam.keras")
    configs = {k: keras.saving.serialize_keras_object(s) for k, s in schedule_objects.items()}
    covered = set(optimizers) | set(schedule_objects) | {"optimlab>SAMModel"}
    registered = {k for k in object_registration.GLOBAL_CUSTOM_OBJECTS if k.startswith("optimlab")}
    print(json.dumps({"saved": saved, "schedules": configs, "missing": sorted(registered - covered),
                      "extra": sorted(covered - registered)}))
""")

CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    {prelude}


    def as_json(value):
        # tuples as lists (as in the saved file), without the names that depend on Keras's registry
        if isinstance(value, dict):
            return {{k: as_json(v) for k, v in value.items() if k not in ("registered_name", "module")}}
        return [as_json(v) for v in value] if isinstance(value, (list, tuple)) else value
    found = json.load(open(sys.argv[1]))
    if len(sys.argv) > 2:  # a sample of the saved objects
        found["saved"] = {{k: v for k, v in found["saved"].items() if k in sys.argv[2].split(",")}}
    problems = []
    for key, entry in found["saved"].items():
        loaded = LOAD(entry["path"], **KWARGS).optimizer
        if type(loaded).__name__ != entry["class"]:
            problems.append(f"{{key}}: loaded {{type(loaded).__name__}}")
        elif as_json(keras.saving.serialize_keras_object(loaded))["config"] != as_json(entry["config"]["config"]):
            problems.append(f"{{key}}: config differs")
        elif len(loaded.variables) != len(entry["variables"]) or not all(
                np.allclose(np.asarray(a), np.asarray(b), rtol=0, atol=0)
                for a, b in zip(loaded.variables, entry["variables"])):
            problems.append(f"{{key}}: variables differ")
        for deserialize in (keras.optimizers.deserialize, keras.saving.deserialize_keras_object):
            again = deserialize(entry["config"], **KWARGS)
            if type(again).__name__ != entry["class"]:
                problems.append(f"{{key}}: {{deserialize.__module__}} gave {{type(again).__name__}}")
    for key, config in found["schedules"].items():
        schedule = keras.saving.deserialize_keras_object(config, **KWARGS)
        if as_json(keras.saving.serialize_keras_object(schedule)) != as_json(config):
            problems.append(f"{{key}}: schedule config differs")
    sam = LOAD(found["sam"], **KWARGS)
    if type(sam).__name__ != "SAMModel":
        problems.append(f"SAMModel loaded as {{type(sam).__name__}}")
    print(json.dumps(problems))
""")

# Every saved object after "optimlab first" and with custom_objects; a sample of each kind in the other orders.
SAMPLE = "optimlab>Adam,optimlab_legacy>Adam,optimlab>Lookahead,schedule:optimlab>WarmupDecay"
ONLY_IMPORT = {
    "optimlab first": "import optimlab\nimport keras\nKWARGS = {}\nLOAD = keras.models.load_model",
    "keras first": "import keras\nimport optimlab\nKWARGS = {}\nLOAD = keras.models.load_model",
    "tf.keras": "import optimlab\nimport tensorflow as tf\nKWARGS = {}\nLOAD = tf.keras.models.load_model\nimport keras",
}
CUSTOM_OBJECTS = textwrap.dedent("""
    import keras
    from keras.src.saving import object_registration
    from optimlab import legacy, optimizers, sam, schedules, wrappers  # noqa: F401  (the classes to pass)
    custom = {k: v for k, v in object_registration.GLOBAL_CUSTOM_OBJECTS.items() if k.startswith("optimlab")}
    for name in custom:
        del object_registration.GLOBAL_CUSTOM_OBJECTS[name]
        del object_registration.GLOBAL_CUSTOM_NAMES[custom[name]]
    KWARGS = {"custom_objects": custom}
    LOAD = keras.models.load_model
""")


def _python(code, *args):
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    found = _python(SAVE, folder)
    found["sam"] = str(folder / "sam.keras")
    index = folder / "index.json"
    index.write_text(json.dumps(found))
    return found, index


def test_the_saving_process_covers_every_registered_class(saved):
    found, _ = saved
    assert found["missing"] == [] and found["extra"] == []
    assert len(found["saved"]) >= 40


@pytest.mark.parametrize("prelude", ONLY_IMPORT.values(), ids=ONLY_IMPORT.keys())
def test_a_new_process_that_imports_optimlab_loads_everything(saved, prelude):
    _, index = saved
    sample = () if prelude == ONLY_IMPORT["optimlab first"] else (SAMPLE,)
    assert _python(CHECK.format(prelude=prelude), index, *sample) == []


def test_a_new_process_loads_everything_with_custom_objects_alone(saved):
    _, index = saved
    assert _python(CHECK.format(prelude=CUSTOM_OBJECTS), index) == []


def test_the_command_still_starts_without_tensorflow():
    code = "import sys, optimlab, optimlab.cli; print(json.dumps('tensorflow' in sys.modules))"
    assert _python("import json\n" + code) is False
