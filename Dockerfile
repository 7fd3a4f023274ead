# The edge node image: build the workspace, then run the fleetmq command.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.base.json tsconfig.json ./
COPY libs libs
COPY services services
RUN npm ci --no-audit --no-fund && npx tsc -b && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    FLEETMQ_LISTENERS=tcp://0.0.0.0:1883,ws://0.0.0.0:8083/mqtt
COPY --from=build /app /app
USER node
EXPOSE 1883 8083
ENTRYPOINT ["node", "services/edge/dist/cli.js"]
CMD ["start"]
