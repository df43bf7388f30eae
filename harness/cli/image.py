"""`harness image build`: the image every member runs from, a Prometheus image for machines
without registry access, and the bitcoind image of Kubernetes members."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from harness.cli.options import BitcoindOption, LoadTarget, boundary

image_app = typer.Typer(help="Build the image every member runs from (and a Prometheus image).", no_args_is_help=True)


@image_app.command("build")
def image_build(
    base: Annotated[Optional[str], typer.Option("--base", help="Base image (never pulled when given; "
                                                "default python:3.12-slim, pulled if missing).")] = None,
    tag: Annotated[str, typer.Option("--tag", help="Tag of the image built.")] = "harness-node:latest",
    load: Annotated[Optional[LoadTarget], typer.Option("--load", help="Then load it into a local cluster.")] = None,
    prometheus: Annotated[bool, typer.Option("--prometheus", help="Build a Prometheus image from the base image and "
                                             "Debian's prometheus package instead (tag harness-prometheus:latest "
                                             "unless --tag).")] = False,
    with_bitcoind: Annotated[bool, typer.Option("--with-bitcoind", help="Also build harness-bitcoind:latest, the "
                                                "image of bitcoind members on Kubernetes: this image with the "
                                                "bitcoind binary (--bitcoind) copied in; --load loads it too.")] = False,
    bitcoind: BitcoindOption = None,
) -> None:
    """Build and tag the node image (node, seeder, host of many nodes); --prometheus: a Prometheus image."""
    from harness.backends import images

    with boundary():
        if prometheus:
            tag = "harness-prometheus:latest" if tag == "harness-node:latest" else tag
            image_id = images.build_prometheus_image(tag, base)
        else:
            image_id = images.build_node_image(tag, base)
        typer.echo(f"built {tag} ({image_id[:19]})")
        built = [tag]
        if with_bitcoind and not prometheus:
            import docker

            from harness.backends.docker import bitcoind as dbtc
            from harness.backends.k8s.values import DEFAULT_BITCOIND_IMAGE
            from harness.backends.local.bitcoind import resolve_binary

            client = docker.from_env()
            # the docker backend's recipe (tagged by the binary's and this image's digests), under the chart's default name
            client.images.get(dbtc.ensure_image(client, tag, resolve_binary(str(bitcoind) if bitcoind else None))).tag(
                *DEFAULT_BITCOIND_IMAGE.split(":"))
            typer.echo(f"built {DEFAULT_BITCOIND_IMAGE}")
            built.append(DEFAULT_BITCOIND_IMAGE)
        for name in built if load is not None else []:
            images.load_image(name, load.value)
            typer.echo(f"loaded {name} into {load.value}")
