"""Training steps per second: optimlab's compiled minibatch loop against Keras ``fit``.

The Boston MLP of the book chapter on the Boston housing regression (``MLP(4, 1)``), batch 32, the same optimizer. Boston is read
from ``--data`` (default ``../shared/data/boston_housing.csv``); without it the
script uses scikit-learn's diabetes data, which has a similar size.

    python benchmarks/train_speed.py --epochs 200 --optimizer adam
"""

import argparse
import time
from pathlib import Path

import keras

import optimlab
from optimlab.lab.training import problems
from optimlab.lab.training.runner import loop

SHARED_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "boston_housing.csv"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_CSV))
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    if Path(args.data).exists():
        problem = problems.get("boston")
        loaded = problems.load(problem, data=args.data)
    else:
        print(f"{args.data} not found: using scikit-learn's diabetes data instead of Boston")
        problem = problems.get("diabetes")
        loaded = problems.load(problem)
    n = len(loaded.x_train)

    def optimizer():
        return optimlab.get(args.optimizer, learning_rate=args.learning_rate)

    loop.train(problem, loaded, optimizer(), seed=0, epochs=2, batch_size=args.batch_size)  # warm caches
    result = loop.train(problem, loaded, optimizer(), seed=0, epochs=args.epochs, batch_size=args.batch_size,
                            eval_every=args.epochs)
    lab_steps = args.epochs * (n // args.batch_size)
    lab_rate = lab_steps / result.history["wall_time"].iloc[-1]

    model = keras.Sequential([keras.Input((loaded.x_train.shape[1],)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=optimizer(), loss="mse")
    model.fit(loaded.x_train, loaded.y_train, epochs=1, batch_size=args.batch_size, verbose=0)  # trace
    start = time.perf_counter()
    model.fit(loaded.x_train, loaded.y_train, epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    fit_seconds = time.perf_counter() - start
    fit_rate = args.epochs * -(-n // args.batch_size) / fit_seconds

    print(f"problem {problem.name}, {n} training rows, batch {args.batch_size}, {args.epochs} epochs, {args.optimizer}")
    print(f"optimlab compiled loop: {lab_rate:10.0f} steps/s")
    print(f"keras Model.fit:        {fit_rate:10.0f} steps/s")
    print(f"ratio: {lab_rate / fit_rate:.1f}x")


if __name__ == "__main__":
    main()
