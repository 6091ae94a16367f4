"""Images given by http(s) URL, fetched only from the hosts ``UNIWIZARD_HTTP_IMAGE_HOSTS``
names: no redirects followed, an image content type required, bounded in size and time. Any
failure is a 400 naming the field the URL was in."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from edge_svc.config import IMAGE_HOSTS_VAR, EdgeConfig
from edge_svc.errors import bad_request
from edge_svc.request import ImageUrl
from uniwizard.types import Attachment


class ImageFetcher:
    def __init__(self, config: EdgeConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.fetch_timeout_s),
                trust_env=False,
            )
        return self._session

    async def fetch_all(self, refs: tuple[ImageUrl, ...]) -> list[Attachment]:
        return list(await asyncio.gather(*(self.fetch(r) for r in refs)))

    async def fetch(self, ref: ImageUrl) -> Attachment:
        host = urlsplit(ref.url).hostname or ""
        if not self.config.image_host_allowed(host):
            raise bad_request(
                f"{ref.param}: host {host!r} is not one the edge fetches images from "
                f"({IMAGE_HOSTS_VAR}); send the image as a data URL",
                ref.param,
            )
        limit = self.config.max_image_bytes
        try:
            async with self._client().get(ref.url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise bad_request(
                        f"{ref.param}: fetching the image gave HTTP {resp.status}", ref.param
                    )
                media_type = resp.content_type.lower()
                if not media_type.startswith("image/"):
                    raise bad_request(
                        f"{ref.param}: the URL is {media_type}, not an image", ref.param
                    )
                data = await resp.content.read(limit + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            why = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise bad_request(
                f"{ref.param}: the image could not be fetched ({why})", ref.param
            ) from None
        if len(data) > limit:
            raise bad_request(
                f"{ref.param}: the image is larger than {limit:,} bytes "
                "(UNIWIZARD_MAX_ATTACHMENT_BYTES)",
                ref.param,
            )
        return Attachment("image", media_type, data)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
