# The edge node image: build the edge and the libraries it uses, then run the fleetmq command.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json ./
# the infra workspace's manifest keeps the workspace list whole for npm ci; its code is not built
COPY infra/package.json infra/package.json
COPY libs libs
COPY services services
RUN npm ci --no-audit --no-fund \
 && npx tsc -b services/edge \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/aws-cdk-lib node_modules/cdk8s node_modules/cdk8s-plus-32 node_modules/constructs

FROM node:20-bookworm-slim
WORKDIR /app
# listeners and the ops server come from the config file, not from FLEETMQ_LISTENERS, which
# would replace a deployment's listeners (and their proxyProtocol settings)
ENV NODE_ENV=production \
    FLEETMQ_CONFIG=/app/infra/docker/fleetmq.yaml
COPY --from=build /app /app
COPY infra/docker/fleetmq.yaml infra/docker/fleetmq.yaml
USER node
# MQTT, MQTT over WebSocket, MQTT over TLS, secure WebSocket, ops (health, metrics, admin API)
EXPOSE 1883 8083 8883 8084 8081
# SIGTERM starts the drain (drain.gracePeriod): give `docker stop` / the orchestrator more than that
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "services/edge/dist/cli.js"]
CMD ["start"]
